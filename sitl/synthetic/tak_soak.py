"""A busy port for the CoT feed: many drones and hundreds of tracks on a simulated clock.

`SoakWorld` moves ``drones`` drones on circles over the site and keeps ``tracks`` tracked
objects alive at once (some moored, most under way); each lives a few minutes and is replaced
by a new one (a new track id) a little later, so tracks start and end all through the run.
`drive` steps it on the simulated clock and tells a `CotFeed` what a pipeline would: each
drone's position, battery and view, and each track's events (``new``, an ``update`` per step,
``end``), then ticks it. It returns the truth the receiver's picture is checked against: when
each track lived, by its CoT uid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from missions.geo import LocalFrame
from vision.bus.tracks import TrackEvent, TrackEventKind
from vision.cot.events import DroneReport, track_uid
from vision.cot.feed import CotFeed
from vision.detections import ObjectClass


@dataclass
class _Track:
    source: str
    track_id: int
    object_class: ObjectClass
    x_m: float
    y_m: float
    course_deg: float
    speed_mps: float
    born_s: float
    dies_s: float


@dataclass
class SoakTruth:
    """When each track lived (simulated Unix seconds), by uid; what drove the feed."""

    site: str
    start_s: float
    lives: dict[str, tuple[float, float]] = field(default_factory=dict)
    drones: int = 0
    steps: int = 0
    end_s: float = 0.0


@dataclass
class SoakWorld:
    frame: LocalFrame
    drones: int = 10
    tracks: int = 200
    moored_share: float = 0.4
    life_s: tuple[float, float] = (120.0, 600.0)
    gap_s: tuple[float, float] = (5.0, 60.0)
    spread_m: float = 1500.0
    seed: int = 0

    def drive(
        self,
        feed: CotFeed,
        minutes: float,
        step_s: float = 0.5,
        after_step: Callable[[float], None] | None = None,
        start_s: float | None = None,
    ) -> SoakTruth:
        """Step the world from `start_s` (default now: a sender drops what is already stale)."""
        rng = np.random.default_rng(self.seed)
        t0 = time.time() if start_s is None else start_s
        truth = SoakTruth(feed.site, t0, drones=self.drones)
        next_id = [0] * self.drones
        slots: list[_Track | None] = [None] * self.tracks
        reborn = rng.uniform(0.0, 30.0, self.tracks)  # first tracks appear over the first half minute
        steps = round(minutes * 60.0 / step_s)
        for step in range(steps + 1):
            now = t0 + step * step_s
            t = step * step_s
            for d in range(self.drones):
                feed.drone(self._drone(d, t, now), now)
            for i in range(self.tracks):
                track = slots[i]
                if track is not None and t >= track.dies_s:
                    feed.track(self._event(TrackEventKind.END, track, now, t0), now)
                    truth.lives[self._uid(feed.site, track)] = (t0 + track.born_s, now)
                    slots[i] = None
                    reborn[i] = t + rng.uniform(*self.gap_s)
                    continue
                if track is None and t >= reborn[i] and t < steps * step_s - 60.0:
                    source = int(rng.integers(self.drones))
                    next_id[source] += 1
                    track = slots[i] = self._new(rng, source, next_id[source], t)
                    feed.track(self._event(TrackEventKind.NEW, track, now, t0), now)
                    continue
                if track is not None:
                    self._move(track, step_s)
                    feed.track(self._event(TrackEventKind.UPDATE, track, now, t0), now)
            feed.tick(now)
            truth.steps += 1
            truth.end_s = now
            if after_step is not None:
                after_step(now)
        for track in slots:
            if track is not None:  # still alive at the end: alive until the feed closes
                truth.lives[self._uid(feed.site, track)] = (t0 + track.born_s, math.inf)
        return truth

    def _drone(self, d: int, t: float, now: float) -> DroneReport:
        angle0 = 2 * math.pi * d / self.drones
        cx, cy = 0.6 * self.spread_m * math.cos(angle0), 0.6 * self.spread_m * math.sin(angle0)
        radius, speed = 250.0, 10.0
        phase = angle0 + speed * t / radius
        x, y = cx + radius * math.cos(phase), cy + radius * math.sin(phase)
        lon, lat = self.frame.lonlat(x, y)
        course = math.degrees(math.atan2(-math.sin(phase), math.cos(phase))) % 360.0  # counter-clockwise
        view = tuple(self.frame.lonlat(x + dx, y + dy)[::-1] for dx, dy in ((-50, -40), (50, -40), (50, 40), (-50, 40)))
        battery = max(5.0, 100.0 - 0.04 * t)
        return DroneReport(d + 1, now, lat, lon, 60.0, course, speed, battery, view)

    def _new(self, rng: np.random.Generator, source: int, track_id: int, t: float) -> _Track:
        moored = rng.random() < self.moored_share
        object_class = ObjectClass.VESSEL if rng.random() < 0.8 else ObjectClass.VEHICLE
        return _Track(
            source=f"cam{source + 1}",
            track_id=track_id,
            object_class=object_class,
            x_m=float(rng.uniform(-self.spread_m, self.spread_m)),
            y_m=float(rng.uniform(-self.spread_m, self.spread_m)),
            course_deg=float(rng.uniform(0.0, 360.0)),
            speed_mps=0.0 if moored else float(rng.uniform(1.0, 8.0)),
            born_s=t,
            dies_s=t + float(rng.uniform(*self.life_s)),
        )

    @staticmethod
    def _move(track: _Track, step_s: float) -> None:
        track.course_deg = (track.course_deg + 0.5 * step_s) % 360.0  # a slow turn
        heading = math.radians(track.course_deg)
        track.x_m += track.speed_mps * step_s * math.sin(heading)
        track.y_m += track.speed_mps * step_s * math.cos(heading)

    def _event(self, kind: TrackEventKind, track: _Track, now: float, t0: float) -> TrackEvent:
        lon, lat = self.frame.lonlat(track.x_m, track.y_m)
        return TrackEvent(
            kind=kind,
            track_id=track.track_id,
            source=track.source,
            object_class=track.object_class,
            time_s=now,
            lat_deg=lat,
            lon_deg=lon,
            error_m=2.0,
            course_deg=track.course_deg if track.speed_mps > 0 else None,
            speed_mps=track.speed_mps,
            confidence=0.9,
            first_seen_s=t0 + track.born_s,
            last_seen_s=now,
        )

    @staticmethod
    def _uid(site: str, track: _Track) -> str:
        return track_uid(site, track.source, track.track_id)

"""The two things AIS lets the drones notice, as clock-driven state machines.

A *dark vessel* is one the cameras see in a watch zone that says nothing: its track stays inside
the zone longer than the zone's limit with no MMSI bound to it (:class:`DarkVesselWatch`). An
*AIS target not seen* is the reverse: the vessel table puts a vessel well inside a camera's
footprint, and for long enough no vessel is seen anywhere near it (:class:`AisNotSeenWatch`) —
a spoofed position, or a transponder on the wrong boat.

Both take the clock as an argument and keep no threads; they say what they found once, as frozen
findings, and leave alerting to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from vision.ais.model import AisTarget, TrackFix

FEED_DEAD_REASON = "AIS feed dead: dark-vessel alerts paused"
# The tracker drops a track it has not seen for a few seconds, so a key without a fix for this
# long is gone; a shorter gap (missed detections, a frame or two out of view) keeps its timers.
TRACK_FORGET_AFTER_S = 15.0

# Cumulative time a target must spend well inside a footprint unseen. The tracker confirms a
# vessel in view within about 2 s at 2 frames a second; 15 s is seven times that, so a vessel that
# is there has had every chance to be seen, and a drone sweeping past does not trigger it.
MIN_INSIDE_S = 15.0
# How far inside the footprint's edge the target must be, at least: a boat cut by the frame's edge
# is often missed by the detector, and the footprint itself is only as good as the drone's pose.
MARGIN_M = 20.0
# A fix within this much beyond the target's own error counts as seeing it: geolocation from 60 m
# is good to 10-20 m, and the GPS antenna of a large ship may stand 30 m from its hull's middle.
NEAR_M = 50.0
# Two updates further apart than this count none of the time between: where the cameras looked
# meanwhile is unknown.
MAX_STEP_S = 5.0
# A target gone from the table this long is forgotten, as the vessel table forgets its MMSI.
TARGET_FORGET_AFTER_S = 3600.0


@dataclass(frozen=True)
class DarkVessel:
    """A track inside ``zone`` since ``since_s`` with no MMSI bound to it, found at ``time_s`` at ``x_m, y_m``."""

    key: str
    zone: str
    since_s: float
    time_s: float
    x_m: float
    y_m: float


@dataclass(frozen=True)
class AisNotSeen:
    """A target well inside a footprint for ``inside_s`` in all, with no vessel seen near it, at ``time_s``."""

    mmsi: int
    label: str
    time_s: float
    x_m: float
    y_m: float
    inside_s: float


class DarkVesselWatch:
    """Tracks inside a watch zone for longer than its limit with no MMSI bound: one finding per track and zone.

    ``zones`` are geometries in the site's metric frame, ``limits_s`` the time each may be spent
    there unbound. "Continuously" forgives gaps in a track's fixes shorter than
    ``forget_after_s``; a fix outside the zone, or a binding, restarts its timer. While the AIS feed
    is dead no vessel can be bound, so nothing is found, :attr:`suspended_reason` says why, and
    timers restart when the feed comes back.
    """

    def __init__(
        self,
        zones: Mapping[str, shapely.Geometry],
        limits_s: Mapping[str, float],
        forget_after_s: float = TRACK_FORGET_AFTER_S,
    ) -> None:
        unlimited = sorted(set(zones) - set(limits_s))
        if unlimited:
            raise ValueError(f"no dark-vessel limit for watch zone(s) {', '.join(map(repr, unlimited))}")
        self._zones = dict(zones)
        for zone in self._zones.values():
            shapely.prepare(zone)
        self._limits_s = dict(limits_s)
        self._forget_after_s = forget_after_s
        self._since: dict[tuple[str, str], float] = {}
        self._found: set[tuple[str, str]] = set()
        self._last_seen_s: dict[str, float] = {}
        self._suspended_reason: str | None = None

    @property
    def suspended_reason(self) -> str | None:
        """Why nothing is being found (the AIS feed is dead), or None while the watch is on."""
        return self._suspended_reason

    def update(
        self, fixes: Sequence[TrackFix], bindings: Mapping[str, int], now_s: float, feed_live: bool
    ) -> list[DarkVessel]:
        self._forget(now_s)
        for fix in fixes:
            self._last_seen_s[fix.key] = now_s
        if not feed_live:
            self._suspended_reason = FEED_DEAD_REASON
            self._since.clear()
            return []
        self._suspended_reason = None
        if not fixes:
            return []
        xs = np.array([fix.x_m for fix in fixes])
        ys = np.array([fix.y_m for fix in fixes])
        found = []
        for name, zone in self._zones.items():
            inside = shapely.contains_xy(zone, xs, ys)
            for fix, is_inside in zip(fixes, inside, strict=True):
                timer = (fix.key, name)
                if not is_inside or fix.key in bindings:
                    self._since.pop(timer, None)
                    continue
                since_s = self._since.setdefault(timer, now_s)
                if now_s - since_s > self._limits_s[name] and timer not in self._found:
                    self._found.add(timer)
                    found.append(DarkVessel(fix.key, name, since_s, now_s, fix.x_m, fix.y_m))
        return found

    def _forget(self, now_s: float) -> None:
        gone = {key for key, seen_s in self._last_seen_s.items() if now_s - seen_s > self._forget_after_s}
        if not gone:
            return
        for key in gone:
            del self._last_seen_s[key]
        self._since = {timer: s for timer, s in self._since.items() if timer[0] not in gone}
        self._found = {timer for timer in self._found if timer[0] not in gone}


@dataclass
class _Unseen:
    last_present_s: float
    inside_s: float = 0.0
    last_inside_s: float | None = None
    found: bool = False


class AisNotSeenWatch:
    """AIS targets well inside a camera's footprint that no camera sees: one finding per MMSI until it is seen.

    A target counts as inside while it lies at least ``max(margin_m, target.error_m)`` inside the
    footprints (their union: two cameras side by side see what lies across their common edge), so
    that wherever in its error it really is, it is in view. Its time inside adds up
    over passes, between consecutive updates at most ``max_step_s`` apart that both found it inside;
    a vessel fix within ``near_m + target.error_m`` of it resets the count and allows a new finding.
    """

    def __init__(
        self,
        min_inside_s: float = MIN_INSIDE_S,
        margin_m: float = MARGIN_M,
        near_m: float = NEAR_M,
        max_step_s: float = MAX_STEP_S,
        forget_after_s: float = TARGET_FORGET_AFTER_S,
    ) -> None:
        self.min_inside_s = min_inside_s
        self.margin_m = margin_m
        self.near_m = near_m
        self.max_step_s = max_step_s
        self.forget_after_s = forget_after_s
        self._targets: dict[int, _Unseen] = {}

    def update(
        self,
        targets: Sequence[AisTarget],
        footprints: Sequence[shapely.Polygon],
        fixes: Sequence[TrackFix],
        now_s: float,
    ) -> list[AisNotSeen]:
        self._targets = {
            mmsi: state for mmsi, state in self._targets.items() if now_s - state.last_present_s <= self.forget_after_s
        }
        if not targets:
            return []
        inside = self._well_inside(targets, footprints)
        near = self._near(targets, fixes)
        found = []
        for target, is_inside, is_near in zip(targets, inside, near, strict=True):
            state = self._targets.setdefault(target.mmsi, _Unseen(last_present_s=now_s))
            state.last_present_s = now_s
            if is_near:
                state.inside_s, state.last_inside_s, state.found = 0.0, None, False
                continue
            if not is_inside:
                state.last_inside_s = None
                continue
            if state.last_inside_s is not None and now_s - state.last_inside_s <= self.max_step_s:
                state.inside_s += now_s - state.last_inside_s
            state.last_inside_s = now_s
            if state.inside_s >= self.min_inside_s and not state.found:
                state.found = True
                found.append(AisNotSeen(target.mmsi, target.label, now_s, target.x_m, target.y_m, state.inside_s))
        return found

    def _well_inside(self, targets: Sequence[AisTarget], footprints: Sequence[shapely.Polygon]) -> np.ndarray:
        xs = np.array([t.x_m for t in targets])
        ys = np.array([t.y_m for t in targets])
        depth_m = np.maximum(self.margin_m, np.array([t.error_m for t in targets]))
        in_view = shapely.union_all([footprint for footprint in footprints if not footprint.is_empty])
        if in_view.is_empty:
            return np.zeros(len(targets), dtype=bool)
        within = shapely.contains_xy(in_view, xs, ys)
        return within & (shapely.distance(in_view.boundary, shapely.points(xs, ys)) >= depth_m)

    def _near(self, targets: Sequence[AisTarget], fixes: Sequence[TrackFix]) -> np.ndarray:
        if not fixes:
            return np.zeros(len(targets), dtype=bool)
        tx = np.array([t.x_m for t in targets])
        ty = np.array([t.y_m for t in targets])
        reach_m = self.near_m + np.array([t.error_m for t in targets])
        fx = np.array([f.x_m for f in fixes])
        fy = np.array([f.y_m for f in fixes])
        distance_m = np.hypot(tx[:, None] - fx[None, :], ty[:, None] - fy[None, :])
        return (distance_m <= reach_m[:, None]).any(axis=1)

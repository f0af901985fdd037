"""What to send to TAK, and when: borderwatch's picture as a stream of CoT events.

`CotFeed` is told what happens — a drone's position (`drone`), a track's news (`track`, the
`vision.bus.tracks.TrackEvent`s a pipeline or the bus makes), an alert (`alert`) — and
`tick(now_s)` is called often (every frame, or a timer). It sends:

- a new track at once, and a drone the first time it is heard;
- updates at most once per ``every_s`` (1 s) per object, and only for one that moved more
  than ``min_move_m``, changed what it is (class, AIS name, dark) or its battery by a percent:
  nothing is sent for an object that has not moved;
- except to keep it fresh: an object still alive whose marker would go stale within
  ``refresh_margin_s`` is sent again as it is, so no marker goes stale while its track lives
  (a moored boat costs one event per ``track_stale_s − refresh_margin_s``, 5 s);
- a track's end as its last event, stale at once, so TAK screens grey it out;
- each alert once, stale after ``alert_stale_s`` (15 min); a dark-vessel alert makes its
  track suspect (``a-s-S``) from then on;
- the site's watch and no-fly zones at the first tick and then every ``zones_every_s`` (60 s).

Times: ``now_s`` is the clock TAK screens compare stale times with (the wall clock, or a
simulation's in a soak); the objects' own times (frame times) go in the events' details.
Thread-safe: the pipeline threads of several drones and the fleet's telemetry may share one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from missions.geo import EARTH_RADIUS_M
from missions.site import Zone
from vision.alerts import Alert, RuleKind
from vision.bus.tracks import TrackEvent, TrackEventKind
from vision.cot import events
from vision.cot.events import DroneReport
from vision.cot.model import CotMessage

Send = Callable[[CotMessage], None]


@dataclass
class FeedStats:
    drones: int = 0
    footprints: int = 0
    tracks: int = 0
    refreshes: int = 0  # of the above, sent only to keep a marker fresh
    ends: int = 0
    alerts: int = 0
    zones: int = 0


@dataclass
class _Object:
    latest: object  # the newest DroneReport or TrackEvent
    sent: object | None = None  # as last sent
    sent_at_s: float = -math.inf
    stale_s: float = -math.inf
    heard_s: float = -math.inf  # feed time of the newest news


@dataclass
class CotFeed:
    site: str
    send: Send
    zones: Iterable[Zone] = ()
    every_s: float = 1.0
    min_move_m: float = 2.0
    drone_stale_s: float = 8.0
    track_stale_s: float = 8.0
    refresh_margin_s: float = 3.0
    drone_lost_after_s: float = 10.0  # a drone not heard for this long is let go stale
    alert_stale_s: float = 900.0
    zones_every_s: float = 60.0
    stats: FeedStats = field(default_factory=FeedStats)
    _drones: dict[int, _Object] = field(default_factory=dict, init=False, repr=False)
    _tracks: dict[tuple[str, int], _Object] = field(default_factory=dict, init=False, repr=False)
    _suspects: set[tuple[str, int]] = field(default_factory=set, init=False, repr=False)
    _zones_sent_s: float = field(default=-math.inf, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.zones = tuple(self.zones)
        if not 0 < self.refresh_margin_s < min(self.drone_stale_s, self.track_stale_s):
            raise ValueError("refresh_margin_s must be positive and shorter than the stale times")

    # -- news -------------------------------------------------------------------------------

    def drone(self, report: DroneReport, now_s: float) -> None:
        """A drone's newest state; fields it leaves None keep what an earlier report said."""
        with self._lock:
            known = self._drones.get(report.number)
            if known is None:
                known = self._drones[report.number] = _Object(report)
            else:
                report = _merge(known.latest, report)  # type: ignore[arg-type]
                known.latest = report
            known.heard_s = now_s
            self._maybe_send_drone(known, now_s)

    def track(self, event: TrackEvent, now_s: float) -> None:
        with self._lock:
            key = (event.source, event.track_id)
            known = self._tracks.get(key)
            if event.kind is TrackEventKind.END:
                if known is not None and known.sent is not None and event.lat_deg is not None:
                    self._send(events.track_event(self.site, event, now_s, now_s, key in self._suspects))
                    self.stats.ends += 1
                self._tracks.pop(key, None)
                self._suspects.discard(key)
                return
            if known is None:
                known = self._tracks[key] = _Object(event)
            known.latest, known.heard_s = event, now_s
            self._maybe_send_track(key, known, now_s)

    def alert(self, alert: Alert, now_s: float, snapshot_url: str | None = None) -> None:
        """An alert's marker; the same alert again (its snapshot now known) replaces it."""
        with self._lock:
            self._send(events.alert_event(self.site, alert, now_s, now_s + self.alert_stale_s, snapshot_url))
            self.stats.alerts += 1
            if alert.rule is RuleKind.DARK_VESSEL and alert.track_id is not None:
                key = (alert.source, alert.track_id)
                self._suspects.add(key)
                known = self._tracks.get(key)
                if known is not None:
                    self._maybe_send_track(key, known, now_s)

    def tick(self, now_s: float) -> None:
        """Send what waited for its turn, refresh what would go stale, and the zones when due."""
        with self._lock:
            if now_s - self._zones_sent_s >= self.zones_every_s:
                self._send_zones(now_s)
            for number, known in list(self._drones.items()):
                if now_s - known.heard_s > self.drone_lost_after_s:
                    del self._drones[number]  # its marker goes stale where it was last heard
                else:
                    self._maybe_send_drone(known, now_s)
            for key, known in self._tracks.items():
                self._maybe_send_track(key, known, now_s)

    def close(self, now_s: float) -> None:
        """Every live track ended (stale now): the run is over, its objects should not linger."""
        with self._lock:
            for key, known in self._tracks.items():
                if known.sent is not None and isinstance(known.latest, TrackEvent):
                    event = replace(known.latest, kind=TrackEventKind.END)
                    if event.lat_deg is not None:
                        self._send(events.track_event(self.site, event, now_s, now_s, key in self._suspects))
                        self.stats.ends += 1
            self._tracks.clear()

    def live_tracks(self) -> int:
        with self._lock:
            return len(self._tracks)

    # -- decisions --------------------------------------------------------------------------

    def _maybe_send_drone(self, known: _Object, now_s: float) -> None:
        report: DroneReport = known.latest  # type: ignore[assignment]
        refresh = known.sent is not None and now_s >= known.stale_s - self.refresh_margin_s
        if not (refresh or self._due(known, now_s, _drone_changed(known.sent, report, self.min_move_m))):
            return
        stale_s = now_s + self.drone_stale_s
        self._send(events.drone_event(self.site, report, now_s, stale_s))
        self.stats.drones += 1
        footprint = events.footprint_event(self.site, report, now_s, stale_s)
        if footprint is not None:
            self._send(footprint)
            self.stats.footprints += 1
        self._mark(known, report, now_s, stale_s, refresh)

    def _maybe_send_track(self, key: tuple[str, int], known: _Object, now_s: float) -> None:
        event: TrackEvent = known.latest  # type: ignore[assignment]
        if event.lat_deg is None:
            return  # nothing to put on a map yet
        suspect = key in self._suspects
        refresh = known.sent is not None and now_s >= known.stale_s - self.refresh_margin_s
        changed = _track_changed(known.sent, event, suspect, self.min_move_m)
        # A track's first position goes at once: that is how fast a new object reaches TAK.
        if not (refresh or (known.sent is None and changed) or self._due(known, now_s, changed)):
            return
        stale_s = now_s + self.track_stale_s
        self._send(events.track_event(self.site, event, now_s, stale_s, suspect))
        self.stats.tracks += 1
        self._mark(known, _Sent(event, suspect), now_s, stale_s, refresh)

    def _due(self, known: _Object, now_s: float, changed: bool) -> bool:
        return changed and now_s - known.sent_at_s >= self.every_s

    def _mark(self, known: _Object, sent: object, now_s: float, stale_s: float, refresh: bool) -> None:
        unchanged = refresh and known.sent is not None and _same(known.sent, sent)
        known.sent, known.sent_at_s, known.stale_s = sent, now_s, stale_s
        if unchanged:
            self.stats.refreshes += 1

    def _send_zones(self, now_s: float) -> None:
        stale_s = now_s + 3 * self.zones_every_s
        for zone in self.zones:
            message = events.zone_event(self.site, zone, now_s, stale_s)
            if message is not None:
                self._send(message)
                self.stats.zones += 1
        self._zones_sent_s = now_s

    def _send(self, message: CotMessage) -> None:
        self.send(message)


@dataclass(frozen=True)
class _Sent:
    event: TrackEvent
    suspect: bool


def _same(a: object, b: object) -> bool:
    if isinstance(a, _Sent) and isinstance(b, _Sent):
        return a.suspect == b.suspect and _track_moved_m(a.event, b.event) == 0.0
    return a == b


def _merge(old: DroneReport, new: DroneReport) -> DroneReport:
    kept = {
        name: getattr(old, name)
        for name in ("alt_m", "course_deg", "speed_mps", "battery_pct", "callsign")
        if getattr(new, name) is None
    }
    if not new.footprint_deg:
        kept["footprint_deg"] = old.footprint_deg
    return replace(new, **kept)


def _drone_changed(sent: object, report: DroneReport, min_move_m: float) -> bool:
    if not isinstance(sent, DroneReport):
        return True
    if _metres(sent.lat_deg, sent.lon_deg, report.lat_deg, report.lon_deg) > min_move_m / 2:
        return True
    battery = (sent.battery_pct, report.battery_pct)
    if (battery[0] is None) != (battery[1] is None):
        return True
    if battery[0] is not None and battery[1] is not None and abs(battery[0] - battery[1]) >= 1.0:
        return True
    return sent.footprint_deg != report.footprint_deg and len(report.footprint_deg) >= 3


def _track_changed(sent: object, event: TrackEvent, suspect: bool, min_move_m: float) -> bool:
    if not isinstance(sent, _Sent):
        return True
    before = sent.event
    if sent.suspect != suspect or before.object_class is not event.object_class:
        return True
    if (before.mmsi, before.vessel_name) != (event.mmsi, event.vessel_name):
        return True
    return _track_moved_m(before, event) > min_move_m


def _track_moved_m(a: TrackEvent, b: TrackEvent) -> float:
    if a.lat_deg is None or a.lon_deg is None or b.lat_deg is None or b.lon_deg is None:
        return math.inf if (a.lat_deg is None) != (b.lat_deg is None) else 0.0
    return _metres(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)


def _metres(lat_a: float, lon_a: float, lat_b: float, lon_b: float) -> float:
    mean_lat = math.radians((lat_a + lat_b) / 2.0)
    east = math.radians(lon_b - lon_a) * math.cos(mean_lat) * EARTH_RADIUS_M
    return math.hypot(east, math.radians(lat_b - lat_a) * EARTH_RADIUS_M)

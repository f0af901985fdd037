"""Alert rules in world coordinates over a site's watch zones.

Three rules, each for a set of object classes and optionally a subset of the zones:

* ENTER: a tracked object is seen inside a zone (including a track that first appears
  there). Once per track, rule and zone: leaving and coming back raises nothing new.
* DWELL: a tracked object has stayed inside a zone for ``dwell_s``. Once per track,
  rule and zone. Leaving the zone resets the timer; a dropout (the track unseen) shorter
  than :data:`DROPOUT_GRACE_S` does not, a longer one does.
* CROWD: more than ``crowd_n`` objects of one class are in a zone at once. Counted per
  class of the rule, from tracks seen within the dropout grace plus this frame's
  untracked detections. Fires once when the count rises above ``crowd_n`` and re-arms
  only when it has fallen back to ``crowd_n`` or fewer.

ENTER and DWELL need a track id: without one, two frames of the same boat cannot be told
from two boats, so untracked detections would raise an alert per frame. They are ignored
by those rules and only counted by CROWD.

Tracks are namespaced by their video source, and forgotten when unseen for
:data:`FORGET_AFTER_S` so that memory stays bounded on a long patrol; a track id that
reappears after that is treated as a new object.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely

from missions.site import DEFAULT_WATCH_RISK, Site
from vision.detections import Detection, Detections, ObjectClass

DROPOUT_GRACE_S = 2.0
FORGET_AFTER_S = 30.0


class RuleKind(enum.Enum):
    ENTER = "enter"
    DWELL = "dwell"
    CROWD = "crowd"
    # Raised by vision.ais's watch, not by this engine: a vessel in a zone that AIS does not name,
    # and an AIS position inside a camera's view where nothing is.
    DARK_VESSEL = "dark-vessel"
    AIS_NOT_SEEN = "ais-not-seen"


class AlertSeverity(enum.StrEnum):
    """How urgent an alert is: its zone's risk as the word an operator reads (a str, so files hold the word)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


def severity(risk: int) -> AlertSeverity:
    """A watch zone's risk (1 to 5) as a severity: 1-2 low, 3 medium, 4 high, 5 critical."""
    if risk <= 2:
        return AlertSeverity.LOW
    return {3: AlertSeverity.MEDIUM, 4: AlertSeverity.HIGH}.get(risk, AlertSeverity.CRITICAL)


@dataclass(frozen=True)
class Rule:
    """One alert rule; ``zones`` names the watch zones it applies to, None for all."""

    kind: RuleKind
    classes: frozenset[ObjectClass]
    dwell_s: float | None = None
    crowd_n: int | None = None
    zones: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("a rule needs at least one object class")
        if self.kind is RuleKind.DWELL and (self.dwell_s is None or not self.dwell_s > 0):
            raise ValueError(f"a dwell rule needs dwell_s > 0, got {self.dwell_s!r}")
        if self.kind is RuleKind.CROWD and (self.crowd_n is None or self.crowd_n < 0):
            raise ValueError(f"a crowd rule needs crowd_n >= 0, got {self.crowd_n!r}")

    @property
    def key(self) -> str:
        """The rule as it appears in alert ids: its kind and threshold."""
        if self.kind is RuleKind.DWELL:
            return f"dwell{self.dwell_s:g}s"
        if self.kind is RuleKind.CROWD:
            return f"crowd{self.crowd_n}"
        return self.kind.value

    def applies_to(self, zone: str) -> bool:
        return self.zones is None or zone in self.zones


_WATCHED = frozenset({ObjectClass.VESSEL, ObjectClass.VEHICLE, ObjectClass.PERSON})

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(RuleKind.ENTER, _WATCHED),
    Rule(RuleKind.DWELL, _WATCHED, dwell_s=60.0),
    Rule(RuleKind.CROWD, frozenset({ObjectClass.VESSEL}), crowd_n=3),
)


@dataclass(frozen=True)
class Alert:
    """One alert, as the console, the evidence file and the ground station receive it.

    ``alert_id`` is derived from the source, rule, zone and track (or the crowd's
    occurrence), so the same event always carries the same id and a receiver can drop
    repeats. ``track_id`` is None for CROWD; ``count`` is how many objects it concerns.
    """

    alert_id: str
    time_s: float  # seconds since the Unix epoch on the run's clock: wall time, or a simulation's own
    iso_time: str
    rule: RuleKind
    zone: str
    risk: int
    severity: AlertSeverity
    object_class: ObjectClass
    track_id: int | None
    lat_deg: float
    lon_deg: float
    count: int
    message: str
    source: str
    mmsi: int | None = None  # the vessel AIS names, when a track is bound to it (or the AIS target not seen)
    vessel_name: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        # An alert without AIS keeps the keys it always had, so records signed before AIS read the same.
        ais = {} if self.mmsi is None else {"mmsi": self.mmsi, "vessel_name": self.vessel_name}
        return {
            "alert_id": self.alert_id,
            "time_s": self.time_s,
            "iso_time": self.iso_time,
            "rule": self.rule.value,
            "zone": self.zone,
            "risk": self.risk,
            "severity": str(self.severity),
            "object_class": self.object_class.value,
            "track_id": self.track_id,
            "lat_deg": self.lat_deg,
            "lon_deg": self.lon_deg,
            "count": self.count,
            "message": self.message,
            "source": self.source,
            **ais,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The inverse of :meth:`to_json_dict`; raises KeyError or ValueError on a malformed dict."""
        track = data["track_id"]
        return cls(
            alert_id=str(data["alert_id"]),
            time_s=float(data["time_s"]),
            iso_time=str(data["iso_time"]),
            rule=RuleKind(data["rule"]),
            zone=str(data["zone"]),
            risk=int(data["risk"]),
            severity=AlertSeverity(data["severity"]),
            object_class=ObjectClass(data["object_class"]),
            track_id=None if track is None else int(track),
            lat_deg=float(data["lat_deg"]),
            lon_deg=float(data["lon_deg"]),
            count=int(data["count"]),
            message=str(data["message"]),
            source=str(data["source"]),
            mmsi=None if data.get("mmsi") is None else int(data["mmsi"]),
            vessel_name=None if data.get("vessel_name") is None else str(data["vessel_name"]),
        )


@dataclass(frozen=True)
class _WatchZone:
    name: str
    risk: int
    slug: str
    shape_m: Any


@dataclass
class _Track:
    """What the engine remembers of one track between frames (internal, never shared)."""

    last_seen_s: float
    object_class: ObjectClass  # as last detected: detectors flicker, the latest label is the best guess
    x_m: float
    y_m: float
    entered_s: dict[int, float] = field(default_factory=dict)  # zone index -> when the current stay began
    fired: set[tuple[int, int]] = field(default_factory=set)  # (rule index, zone index)


@dataclass
class _Crowd:
    armed: bool = True
    occurrences: int = 0


@dataclass(frozen=True)
class _Sighting:
    detection: Detection
    x_m: float
    y_m: float
    zones: tuple[int, ...]


class AlertEngine:
    """Turns each frame's located detections into alerts, remembering tracks between frames.

    Not thread-safe: feed it from one thread, one frame at a time, in time order.
    """

    def __init__(self, site: Site, rules: Iterable[Rule] = DEFAULT_RULES) -> None:
        self._site = site
        self._rules = tuple(rules)
        self._zones: tuple[_WatchZone, ...] = tuple(
            _WatchZone(z.name, z.risk or DEFAULT_WATCH_RISK, slug(z.name), site.local(z)) for z in site.watch
        )
        for zone in self._zones:
            shapely.prepare(zone.shape_m)
        names = {z.name for z in self._zones}
        for rule in self._rules:
            unknown = (rule.zones or frozenset()) - names
            if unknown:
                raise ValueError(f"rule {rule.key} names unknown watch zones: {', '.join(sorted(unknown))}")
        for i, rule in enumerate(self._rules):
            for other in self._rules[:i]:
                # Alert ids name the rule by its key; two such rules would raise two alerts with one id.
                if rule.key == other.key and rule.classes & other.classes:
                    raise ValueError(f"two {rule.key} rules for the same class: merge them into one")
        self._tracks: dict[tuple[str, int], _Track] = {}
        self._crowds: dict[tuple[str, int, int, ObjectClass], _Crowd] = {}

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def tracked_count(self) -> int:
        """How many tracks the engine currently remembers."""
        return len(self._tracks)

    def process(self, detections: Detections) -> list[Alert]:
        now = detections.frame_time_s
        sightings = self._locate(detections)
        alerts: list[Alert] = []
        latest: dict[int, _Sighting] = {}
        for s in sightings:
            if s.detection.track_id is not None:
                latest[s.detection.track_id] = s
        for track_id, s in latest.items():
            track = self._update_track(detections.source, track_id, s, now)
            alerts.extend(self._track_alerts(detections, track, s, now))
        alerts.extend(self._crowd_alerts(detections, sightings, now))
        self._forget(now)
        return alerts

    def _locate(self, detections: Detections) -> list[_Sighting]:
        located = detections.located().items
        if not located or not self._zones:
            return []
        xy = np.array([_local_xy(self._site, d) for d in located], dtype=float).reshape(-1, 2)
        inside = np.column_stack([shapely.contains_xy(z.shape_m, xy[:, 0], xy[:, 1]) for z in self._zones])
        return [
            _Sighting(d, float(xy[i, 0]), float(xy[i, 1]), tuple(int(j) for j in np.flatnonzero(inside[i])))
            for i, d in enumerate(located)
        ]

    def _update_track(self, source: str, track_id: int, s: _Sighting, now: float) -> _Track:
        track = self._tracks.get((source, track_id))
        if track is None:
            track = self._tracks[(source, track_id)] = _Track(now, s.detection.object_class, s.x_m, s.y_m)
        elif now - track.last_seen_s >= DROPOUT_GRACE_S:
            # Too long unseen to know it stayed put: its stays start over, its fired alerts stand.
            track.entered_s.clear()
        for zone in list(track.entered_s):
            if zone not in s.zones:
                del track.entered_s[zone]
        for zone in s.zones:
            track.entered_s.setdefault(zone, now)
        track.last_seen_s, track.x_m, track.y_m = now, s.x_m, s.y_m
        track.object_class = s.detection.object_class
        return track

    def _track_alerts(self, detections: Detections, track: _Track, s: _Sighting, now: float) -> list[Alert]:
        d = s.detection
        alerts = []
        for r, rule in enumerate(self._rules):
            if rule.kind is RuleKind.CROWD or d.object_class not in rule.classes:
                continue
            for z, since in track.entered_s.items():
                zone = self._zones[z]
                if (r, z) in track.fired or not rule.applies_to(zone.name):
                    continue
                if rule.kind is RuleKind.ENTER:
                    message = f"{d.object_class.value} {d.track_id} entered {zone.name}"
                elif now - since >= rule.dwell_s:
                    message = (
                        f"{d.object_class.value} {d.track_id} in {zone.name} for {now - since:.0f} s "
                        f"(limit {rule.dwell_s:g} s)"
                    )
                else:
                    continue
                track.fired.add((r, z))
                lon, lat = _lonlat(self._site, d, s)
                alert_id = f"{detections.source}:{rule.key}-{zone.slug}-{d.track_id}"
                alerts.append(
                    _alert(alert_id, detections, rule, zone, d.object_class, d.track_id, lat, lon, 1, message)
                )
        return alerts

    def _crowd_alerts(self, detections: Detections, sightings: list[_Sighting], now: float) -> list[Alert]:
        source = detections.source
        present: dict[int, dict[ObjectClass, list[tuple[float, float]]]] = {}
        for s in sightings:
            if s.detection.track_id is None:
                for z in s.zones:
                    present.setdefault(z, {}).setdefault(s.detection.object_class, []).append((s.x_m, s.y_m))
        for (track_source, _), track in self._tracks.items():
            # A track missing from this frame but within the grace is still there: counting only this
            # frame would let one flickering boat re-arm the rule and raise the same crowd twice.
            if track_source != source or now - track.last_seen_s >= DROPOUT_GRACE_S:
                continue
            for z in track.entered_s:
                present.setdefault(z, {}).setdefault(track.object_class, []).append((track.x_m, track.y_m))
        alerts = []
        for r, rule in enumerate(self._rules):
            if rule.kind is not RuleKind.CROWD:
                continue
            for z, zone in enumerate(self._zones):
                if not rule.applies_to(zone.name):
                    continue
                for cls in sorted(rule.classes, key=lambda c: c.value):
                    points = present.get(z, {}).get(cls, [])
                    state = self._crowds.setdefault((source, r, z, cls), _Crowd())
                    if len(points) <= rule.crowd_n:
                        state.armed = True
                        continue
                    if not state.armed:
                        continue
                    state.armed = False
                    state.occurrences += 1
                    x, y = np.mean(points, axis=0)
                    lon, lat = self._site.frame.lonlat(float(x), float(y))
                    message = f"{len(points)} {cls.value}s in {zone.name} (limit {rule.crowd_n})"
                    alert_id = f"{source}:{rule.key}-{zone.slug}-{cls.value}-{state.occurrences}"
                    alerts.append(_alert(alert_id, detections, rule, zone, cls, None, lat, lon, len(points), message))
        return alerts

    def _forget(self, now: float) -> None:
        stale = [key for key, track in self._tracks.items() if now - track.last_seen_s >= FORGET_AFTER_S]
        for key in stale:
            del self._tracks[key]


def _alert(
    alert_id: str,
    detections: Detections,
    rule: Rule,
    zone: _WatchZone,
    object_class: ObjectClass,
    track_id: int | None,
    lat_deg: float,
    lon_deg: float,
    count: int,
    message: str,
) -> Alert:
    time_s = detections.frame_time_s
    return Alert(
        alert_id=alert_id,
        time_s=time_s,
        iso_time=iso_time(time_s),
        rule=rule.kind,
        zone=zone.name,
        risk=zone.risk,
        severity=severity(zone.risk),
        object_class=object_class,
        track_id=track_id,
        lat_deg=lat_deg,
        lon_deg=lon_deg,
        count=count,
        message=message,
        source=detections.source,
    )


def _local_xy(site: Site, d: Detection) -> tuple[float, float]:
    if d.has_local_position:
        return float(d.x_m), float(d.y_m)  # type: ignore[arg-type]
    return site.frame.xy(d.lon_deg, d.lat_deg)  # type: ignore[arg-type]


def _lonlat(site: Site, d: Detection, s: _Sighting) -> tuple[float, float]:
    if d.has_geo_position:
        return float(d.lon_deg), float(d.lat_deg)  # type: ignore[arg-type]
    return site.frame.lonlat(s.x_m, s.y_m)


def iso_time(time_s: float) -> str:
    if not math.isfinite(time_s):
        return ""
    return datetime.fromtimestamp(time_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "zone"

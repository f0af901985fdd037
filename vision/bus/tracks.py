"""Each tracked object's life as a few events, for the ``tracks`` channel (Frigate's ``frigate/events``).

`TrackEvents` is fed a stream's detections frame by frame and says what to send:

- ``new`` the first frame a track id appears;
- ``update`` at most once per ``update_every_s`` (1 s) of frame time per track, and only when
  the object moved more than ``min_move_m`` (2 m) from where the last event put it, got a
  position it lacked, changed class, or was named by AIS: a moored boat costs nothing after
  its ``new``;
- ``end`` once a track has not been seen for ``end_after_s`` (3 s) of frame time, longer than
  the tracker coasts a lost track (2 s), so an id that has ended does not come back; and for
  every track still alive when the stream closes (`close`).

Times are the camera's (``frame_time_s``), never the wall clock, as the tracker's are. Course
and speed are the object's mean motion over the last ``velocity_window_s`` (2 s) of fixes,
unknown until a track has fixes half a second apart. Pure: no clock, no network, no Qt.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from missions.geo import EARTH_RADIUS_M
from vision.detections import Detection, Detections, ObjectClass

# Fixes closer in time than this make a speed out of the geolocation's jitter.
_MIN_VELOCITY_SPAN_S = 0.5
# Below this the course is the direction of the jitter, not of the object.
_MIN_COURSE_SPEED_MPS = 0.5
_MAX_FIXES = 64  # a track's fix history, whatever the frame rate


class TrackEventKind(enum.Enum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True)
class TrackEvent:
    """One event of one track. Position, error, course and speed are None when not known.

    ``time_s`` is the frame time the event was decided at: for an ``end``, the frame that
    found the track gone (or the last frame, on close), while ``last_seen_s`` is the last
    frame it was seen in, and position and class are as they were then.
    """

    kind: TrackEventKind
    track_id: int
    source: str
    object_class: ObjectClass
    time_s: float
    lat_deg: float | None
    lon_deg: float | None
    error_m: float | None  # the geolocation's error radius, when the detection carries one
    course_deg: float | None  # over ground, clockwise from true north, [0, 360)
    speed_mps: float | None
    confidence: float
    first_seen_s: float
    last_seen_s: float
    mmsi: int | None = None  # the vessel AIS names, once vision.ais binds the track to it
    vessel_name: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        # Without AIS the payload keeps the keys it always had, as alerts and detections do.
        ais = {} if self.mmsi is None else {"mmsi": self.mmsi, "vessel_name": self.vessel_name}
        return {
            "type": self.kind.value,
            "track_id": self.track_id,
            "source": self.source,
            "object_class": self.object_class.value,
            "time_s": self.time_s,
            "lat_deg": self.lat_deg,
            "lon_deg": self.lon_deg,
            "error_m": self.error_m,
            "course_deg": self.course_deg,
            "speed_mps": self.speed_mps,
            "confidence": self.confidence,
            "first_seen_s": self.first_seen_s,
            "last_seen_s": self.last_seen_s,
            **ais,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> TrackEvent:
        """The inverse of :meth:`to_json_dict`; KeyError for a missing field, ValueError saying what is wrong."""
        kind = data["type"]
        if kind not in tuple(k.value for k in TrackEventKind):
            raise ValueError(f"type {kind!r}, expected one of {', '.join(k.value for k in TrackEventKind)}")
        track_id, source, object_class = data["track_id"], data["source"], data["object_class"]
        if type(track_id) is not int or track_id < 0:
            raise ValueError(f"track_id {track_id!r} is not a track id")
        if not isinstance(source, str):
            raise ValueError(f"source {source!r} is not a string")
        if object_class not in tuple(c.value for c in ObjectClass):
            classes = ", ".join(c.value for c in ObjectClass)
            raise ValueError(f"object_class {object_class!r}, expected one of {classes}")
        lat, lon = _optional(data, "lat_deg", -90.0, 90.0), _optional(data, "lon_deg", -180.0, 180.0)
        if (lat is None) != (lon is None):
            raise ValueError("lat_deg and lon_deg: one is null and the other is not")
        first, last, time_s = (_number(data, k) for k in ("first_seen_s", "last_seen_s", "time_s"))
        if not first <= last <= time_s:
            raise ValueError(f"first_seen_s {first}, last_seen_s {last} and time_s {time_s} are out of order")
        mmsi, vessel_name = data.get("mmsi"), data.get("vessel_name")
        if mmsi is not None and (type(mmsi) is not int or not 0 < mmsi < 1_000_000_000):
            raise ValueError(f"mmsi {mmsi!r} is not an MMSI")
        if vessel_name is not None and not isinstance(vessel_name, str):
            raise ValueError(f"vessel_name {vessel_name!r} is not a string")
        return cls(
            kind=TrackEventKind(kind),
            track_id=track_id,
            source=source,
            object_class=ObjectClass(object_class),
            time_s=time_s,
            lat_deg=lat,
            lon_deg=lon,
            error_m=_optional(data, "error_m", 0.0),
            course_deg=_optional(data, "course_deg", 0.0, 360.0),
            speed_mps=_optional(data, "speed_mps", 0.0),
            confidence=_number(data, "confidence", 0.0, 1.0),
            first_seen_s=first,
            last_seen_s=last,
            mmsi=mmsi,
            vessel_name=vessel_name,
        )


def _number(data: Mapping[str, Any], name: str, low: float = -math.inf, high: float = math.inf) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} {value!r} is not a number")
    if not low <= value <= high:
        raise ValueError(f"{name} {value!r} is outside [{low:g}, {high:g}]")
    return float(value)


def _optional(data: Mapping[str, Any], name: str, low: float = -math.inf, high: float = math.inf) -> float | None:
    return None if data[name] is None else _number(data, name, low, high)


@dataclass(frozen=True)
class _Fix:
    time_s: float
    x_m: float | None
    y_m: float | None
    lat_deg: float | None
    lon_deg: float | None


def _fix(time_s: float, d: Detection) -> _Fix | None:
    return _Fix(time_s, d.x_m, d.y_m, d.lat_deg, d.lon_deg) if d.is_located else None


def _east_north_m(a: _Fix, b: _Fix) -> tuple[float, float] | None:
    """From ``a`` to ``b`` in metres; None when they share no kind of position."""
    if a.x_m is not None and a.y_m is not None and b.x_m is not None and b.y_m is not None:
        return b.x_m - a.x_m, b.y_m - a.y_m
    if a.lat_deg is not None and a.lon_deg is not None and b.lat_deg is not None and b.lon_deg is not None:
        # Equirectangular: metres apart over a second or two, where it is exact to parts per million.
        mean_lat = math.radians((a.lat_deg + b.lat_deg) / 2.0)
        east = math.radians(b.lon_deg - a.lon_deg) * math.cos(mean_lat) * EARTH_RADIUS_M
        return east, math.radians(b.lat_deg - a.lat_deg) * EARTH_RADIUS_M
    return None


@dataclass
class _Track:
    first_seen_s: float
    last: Detection  # as last seen
    last_seen_s: float
    fixes: deque[_Fix] = field(default_factory=lambda: deque(maxlen=_MAX_FIXES))
    sent_s: float = -math.inf  # frame time of the last new or update
    sent_fix: _Fix | None = None
    sent_class: ObjectClass | None = None
    sent_mmsi: tuple[int | None, str | None] = (None, None)


@dataclass
class TrackEvents:
    """What to send about one video stream's tracks: ``events.update(detections)`` per frame, ``close()`` at the end.

    One per stream, as a `vision.tracking.Tracker` is: frames of another ``source`` are
    refused, since their track ids name other objects. Detections without a track id are
    not tracks and are ignored.
    """

    update_every_s: float = 1.0
    min_move_m: float = 2.0
    end_after_s: float = 3.0
    velocity_window_s: float = 2.0
    _tracks: dict[int, _Track] = field(default_factory=dict, init=False, repr=False)
    _source: str | None = field(default=None, init=False, repr=False)
    _now_s: float = field(default=-math.inf, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.update_every_s < 0 or self.min_move_m < 0 or self.end_after_s <= 0 or self.velocity_window_s <= 0:
            raise ValueError("intervals and distances must not be negative, and end_after_s must be positive")

    def __len__(self) -> int:
        """Tracks alive: seen and not yet ended."""
        return len(self._tracks)

    def update(self, detections: Detections) -> list[TrackEvent]:
        """The events a frame's detections make: first the ends of tracks gone too long, then in detection order."""
        if self._source is None:
            self._source = detections.source
        elif detections.source != self._source:
            raise ValueError(f"these track events follow {self._source!r}; use another for {detections.source!r}")
        # A frame older than one already seen (out of order) ends nothing and is not taken as newer.
        time_s = detections.frame_time_s
        self._now_s = max(self._now_s, time_s)
        events = [
            self._event(TrackEventKind.END, track_id, track, self._now_s)
            for track_id, track in self._tracks.items()
            if self._now_s - track.last_seen_s >= self.end_after_s
        ]
        for event in events:
            del self._tracks[event.track_id]
        seen: set[int] = set()
        for d in detections:
            if d.track_id is None or d.track_id in seen:
                continue
            seen.add(d.track_id)
            event = self._seen(d.track_id, d, time_s)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[TrackEvent]:
        """An ``end`` for every track still alive, at the newest frame time seen; none are alive after."""
        events = [self._event(TrackEventKind.END, i, t, self._now_s) for i, t in self._tracks.items()]
        self._tracks.clear()
        return events

    def _seen(self, track_id: int, d: Detection, time_s: float) -> TrackEvent | None:
        track = self._tracks.get(track_id)
        fix = _fix(time_s, d)
        if track is None:
            track = self._tracks[track_id] = _Track(first_seen_s=time_s, last=d, last_seen_s=time_s)
            self._add_fix(track, fix)
            return self._sent(self._event(TrackEventKind.NEW, track_id, track, time_s), track, fix)
        if time_s < track.last_seen_s:
            return None
        track.last, track.last_seen_s = d, time_s
        self._add_fix(track, fix)
        if time_s - track.sent_s < self.update_every_s or not self._changed(track, d, fix):
            return None
        return self._sent(self._event(TrackEventKind.UPDATE, track_id, track, time_s), track, fix)

    def _changed(self, track: _Track, d: Detection, fix: _Fix | None) -> bool:
        if d.object_class is not track.sent_class or (d.mmsi, d.vessel_name) != track.sent_mmsi:
            return True
        if fix is None:
            return False  # lost its position: nothing new to say where it is
        if track.sent_fix is None:
            return True
        offset = _east_north_m(track.sent_fix, fix)
        return offset is None or math.hypot(*offset) > self.min_move_m

    def _add_fix(self, track: _Track, fix: _Fix | None) -> None:
        if fix is None:
            return
        fixes = track.fixes
        fixes.append(fix)
        # Keep one fix at least a window old, so the velocity spans the whole window.
        while len(fixes) > 2 and fixes[1].time_s <= fix.time_s - self.velocity_window_s:
            fixes.popleft()

    @staticmethod
    def _sent(event: TrackEvent, track: _Track, fix: _Fix | None) -> TrackEvent:
        track.sent_s, track.sent_class = event.time_s, event.object_class
        track.sent_mmsi = (event.mmsi, event.vessel_name)
        if fix is not None:
            track.sent_fix = fix
        return event

    def _event(self, kind: TrackEventKind, track_id: int, track: _Track, time_s: float) -> TrackEvent:
        d = track.last
        course_deg, speed_mps = _velocity(track.fixes)
        error_m = d.error_m
        assert self._source is not None
        return TrackEvent(
            kind=kind,
            track_id=track_id,
            source=self._source,
            object_class=d.object_class,
            time_s=time_s,
            lat_deg=d.lat_deg if d.has_geo_position else None,
            lon_deg=d.lon_deg if d.has_geo_position else None,
            error_m=None if error_m is None else round(float(error_m), 2),
            course_deg=course_deg,
            speed_mps=speed_mps,
            confidence=round(d.confidence, 3),
            first_seen_s=track.first_seen_s,
            last_seen_s=track.last_seen_s,
            mmsi=d.mmsi,
            vessel_name=d.vessel_name,
        )


def _velocity(fixes: deque[_Fix]) -> tuple[float | None, float | None]:
    """Course (degrees) and speed (m/s) from the oldest kept fix to the newest; None for what is not known."""
    if len(fixes) < 2:
        return None, None
    first, last = fixes[0], fixes[-1]
    span_s = last.time_s - first.time_s
    offset = _east_north_m(first, last)
    if span_s < _MIN_VELOCITY_SPAN_S or offset is None:
        return None, None
    east, north = offset
    speed = math.hypot(east, north) / span_s
    if speed < _MIN_COURSE_SPEED_MPS:
        return None, round(speed, 2)
    # Rounded before the modulo, so that 359.96 is 0.0 and never 360.0.
    return round(math.degrees(math.atan2(east, north)), 1) % 360.0, round(speed, 2)

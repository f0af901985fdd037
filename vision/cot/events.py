"""borderwatch's values as Cursor on Target events (pure: no clock, no network).

Every event is CoT 2.0 XML with ``time`` and ``start`` the moment it is made (``now_s``) and
``stale`` when a TAK screen should grey it out. What each is:

=====================  ==========================  ===========================================
what                   type                        uid
=====================  ==========================  ===========================================
drone                  ``a-f-A-M-F-Q`` (friendly   ``borderwatch.<site>.drone-<n>``
                       UAV), how ``m-g``
its camera's view      ``u-d-f`` (drawn shape)     ``borderwatch.<site>.drone-<n>.footprint``
tracked vessel         ``a-u-S``; ``a-s-S`` dark   ``borderwatch.<site>.<source>.track-<id>``
tracked vehicle etc.   ``a-u-G``                   ``borderwatch.<site>.<source>.track-<id>``
alert                  ``b-m-p-s-m`` (spot marker) ``borderwatch.<site>.alert.<alert id>``
watch / no-fly zone    ``u-d-f``, ``u-d-c-c``      ``borderwatch.<site>.zone.<name>``
=====================  ==========================  ===========================================

A track's ``how`` is ``m-i`` (machine, mensurated from imagery), its ``ce`` the geolocation's
error radius, its ``hae`` and ``le`` unknown (9999999: CoT's "not known"), since a camera
places a boat on the water plane, not on the ellipsoid. TAK's own detail elements carry what
TAK clients show (``contact`` callsign, ``track`` course and speed, ``status`` battery,
``remarks``, ``link``, ``color``); a ``borderwatch`` element carries the rest for tools that
read it (source, track id, class, confidence, MMSI, alert rule and zone).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import shapely

from missions.site import Role, Zone
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus.tracks import TrackEvent
from vision.cot.model import CotMessage
from vision.detections import ObjectClass

UNKNOWN = 9999999.0  # CoT's value for a ce, le or hae not known

DRONE_TYPE = "a-f-A-M-F-Q"
SHAPE_TYPE = "u-d-f"
CIRCLE_TYPE = "u-d-c-c"
ALERT_TYPE = "b-m-p-s-m"

# ARGB as TAK writes colours: a signed 32-bit integer.
_SEVERITY_ARGB = {
    AlertSeverity.LOW: 0xFFFFFF00,
    AlertSeverity.MEDIUM: 0xFFFFA500,
    AlertSeverity.HIGH: 0xFFFF0000,
    AlertSeverity.CRITICAL: 0xFFFF00FF,
}
_ZONE_ARGB = {Role.WATCH: 0xFFFFA500, Role.NO_FLY: 0xFFFF0000}
_FOOTPRINT_ARGB = 0xFF00FFFF


@dataclass(frozen=True)
class DroneReport:
    """A drone as CoT shows it. Unknown numbers are None; ``footprint_deg`` is its camera's
    view of the ground as (lat, lon) vertices, empty when not known."""

    number: int  # from 1, as the fleet names drones
    time_s: float  # when its position was true
    lat_deg: float
    lon_deg: float
    alt_m: float | None = None  # metres above mean sea level
    course_deg: float | None = None
    speed_mps: float | None = None
    battery_pct: float | None = None
    footprint_deg: tuple[tuple[float, float], ...] = ()
    callsign: str | None = None


def iso(time_s: float) -> str:
    """A Unix time as CoT writes it: ISO 8601 UTC to the millisecond, with ``Z``."""
    return datetime.fromtimestamp(time_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def slug(text: str) -> str:
    """A name as one uid atom: letters, digits, ``-`` and ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text.strip()).strip("-") or "unnamed"


def drone_uid(site: str, number: int) -> str:
    return f"borderwatch.{slug(site)}.drone-{number}"


def track_uid(site: str, source: str, track_id: int) -> str:
    return f"borderwatch.{slug(site)}.{slug(source)}.track-{track_id}"


def alert_uid(site: str, alert_id: str) -> str:
    return f"borderwatch.{slug(site)}.alert.{slug(alert_id)}"


def zone_uid(site: str, name: str) -> str:
    return f"borderwatch.{slug(site)}.zone.{slug(name)}"


def drone_event(site: str, drone: DroneReport, now_s: float, stale_s: float) -> CotMessage:
    uid = drone_uid(site, drone.number)
    hae = UNKNOWN if drone.alt_m is None else drone.alt_m
    event, detail = _event(uid, DRONE_TYPE, "m-g", now_s, stale_s, drone.lat_deg, drone.lon_deg, hae=hae)
    _sub(detail, "contact", callsign=drone.callsign or f"{site} drone {drone.number}")
    _sub(detail, "precisionlocation", geopointsrc="GPS", altsrc="GPS")
    if drone.course_deg is not None or drone.speed_mps is not None:
        _sub(detail, "track", course=_num(drone.course_deg or 0.0, 1), speed=_num(drone.speed_mps or 0.0, 2))
    if drone.battery_pct is not None:
        _sub(detail, "status", battery=str(round(max(0.0, min(100.0, drone.battery_pct)))))
    _sub(detail, "borderwatch", kind="drone", site=site, drone=str(drone.number), seen=iso(drone.time_s))
    remarks = f"borderwatch drone {drone.number} of {site}"
    if drone.battery_pct is not None:
        remarks += f", battery {drone.battery_pct:.0f} %"
    ET.SubElement(detail, "remarks").text = remarks
    return _message(uid, stale_s, event)


def footprint_event(site: str, drone: DroneReport, now_s: float, stale_s: float) -> CotMessage | None:
    """The drone's camera view as a closed shape linked to the drone; None when it has none."""
    if len(drone.footprint_deg) < 3:
        return None
    uid = f"{drone_uid(site, drone.number)}.footprint"
    ring = list(drone.footprint_deg)
    centre = shapely.Polygon([(lon, lat) for lat, lon in ring]).centroid
    event, detail = _event(uid, SHAPE_TYPE, "m-g", now_s, stale_s, centre.y, centre.x)
    _shape(detail, ring, _FOOTPRINT_ARGB, fill_alpha=0x30)
    _sub(detail, "contact", callsign=f"{site} drone {drone.number} view")
    _sub(detail, "link", uid=drone_uid(site, drone.number), type=DRONE_TYPE, relation="p-p")
    _sub(detail, "borderwatch", kind="footprint", site=site, drone=str(drone.number))
    return _message(uid, stale_s, event)


def track_type(object_class: ObjectClass, suspect: bool) -> str:
    """A vessel is a surface track, anything else on the ground; a dark vessel is suspect."""
    dimension = "S" if object_class is ObjectClass.VESSEL else "G"
    return f"a-{'s' if suspect else 'u'}-{dimension}"


def track_event(site: str, track: TrackEvent, now_s: float, stale_s: float, suspect: bool = False) -> CotMessage:
    """A tracked object where its last event put it. Needs a position (``track.lat_deg``)."""
    if track.lat_deg is None or track.lon_deg is None:
        raise ValueError(f"track {track.track_id} of {track.source} has no position to send")
    uid = track_uid(site, track.source, track.track_id)
    ce = UNKNOWN if track.error_m is None else track.error_m
    kind = track_type(track.object_class, suspect)
    event, detail = _event(uid, kind, "m-i", now_s, stale_s, track.lat_deg, track.lon_deg, ce=ce)
    label = f"{track.object_class.value} {track.track_id} ({track.source})"
    if track.mmsi is not None:
        label = f"{track.vessel_name or 'MMSI'} {track.mmsi}"
    _sub(detail, "contact", callsign=("DARK " if suspect else "") + label)
    if track.course_deg is not None or track.speed_mps is not None:
        _sub(detail, "track", course=_num(track.course_deg or 0.0, 1), speed=_num(track.speed_mps or 0.0, 2))
    extra = {} if track.mmsi is None else {"mmsi": str(track.mmsi), "vessel_name": track.vessel_name or ""}
    _sub(
        detail,
        "borderwatch",
        kind="track",
        site=site,
        source=track.source,
        track_id=str(track.track_id),
        object_class=track.object_class.value,
        confidence=_num(track.confidence, 3),
        first_seen=iso(track.first_seen_s),
        last_seen=iso(track.last_seen_s),
        suspect="dark-vessel" if suspect else "",
        **extra,
    )
    remarks = [f"{track.object_class.value} seen by {track.source} since {iso(track.first_seen_s)}"]
    if track.mmsi is not None:
        remarks.append(f"AIS: MMSI {track.mmsi}" + (f" ({track.vessel_name})" if track.vessel_name else ""))
    if suspect:
        remarks.append("no AIS names it: dark vessel")
    ET.SubElement(detail, "remarks").text = "; ".join(remarks)
    return _message(uid, stale_s, event)


def alert_event(site: str, alert: Alert, now_s: float, stale_s: float, snapshot_url: str | None = None) -> CotMessage:
    """An alert as a marker where it happened, coloured by severity, linking its snapshot."""
    uid = alert_uid(site, alert.alert_id)
    event, detail = _event(uid, ALERT_TYPE, "m-i", now_s, stale_s, alert.lat_deg, alert.lon_deg)
    _sub(detail, "contact", callsign=f"{alert.severity.upper()}: {alert.message}")
    _sub(detail, "color", argb=str(_signed(_SEVERITY_ARGB[alert.severity])))
    extra = {} if alert.mmsi is None else {"mmsi": str(alert.mmsi), "vessel_name": alert.vessel_name or ""}
    if alert.track_id is not None:
        track = track_uid(site, alert.source, alert.track_id)
        _sub(detail, "link", uid=track, type=track_type(alert.object_class, alert.rule is RuleKind.DARK_VESSEL))
        extra["track_uid"] = track
    _sub(
        detail,
        "borderwatch",
        kind="alert",
        site=site,
        alert_id=alert.alert_id,
        rule=alert.rule.value,
        zone=alert.zone,
        severity=str(alert.severity),
        risk=str(alert.risk),
        source=alert.source,
        time=iso(alert.time_s),
        **extra,
    )
    if snapshot_url is not None:
        _sub(detail, "link", url=snapshot_url, mime="image/jpeg", relation="r-u", remarks="snapshot")
    text = f"{alert.message}. Zone {alert.zone} (risk {alert.risk}), rule {alert.rule.value}, "
    text += f"severity {alert.severity}, at {iso(alert.time_s)}"
    if snapshot_url is not None:
        text += f". Snapshot: {snapshot_url}"
    ET.SubElement(detail, "remarks").text = text
    return _message(uid, stale_s, event)


def zone_event(site: str, zone: Zone, now_s: float, stale_s: float) -> CotMessage | None:
    """A watch or no-fly zone as a drawn shape; None for other roles."""
    if zone.role not in _ZONE_ARGB:
        return None
    uid = zone_uid(site, zone.name)
    argb = _ZONE_ARGB[zone.role]
    if zone.is_circle and zone.radius_m is not None:
        centre = zone.shape_deg
        event, detail = _event(uid, CIRCLE_TYPE, "h-e", now_s, stale_s, centre.y, centre.x)
        shape = ET.SubElement(detail, "shape")
        radius = _num(zone.radius_m, 1)
        _sub(shape, "ellipse", major=radius, minor=radius, angle="360")
        _sub(detail, "strokeColor", value=str(_signed(argb)))
        _sub(detail, "fillColor", value=str(_signed((argb & 0x00FFFFFF) | 0x30000000)))
    else:
        polygon = zone.shape_deg if zone.shape_deg.geom_type == "Polygon" else zone.shape_deg.convex_hull
        centre = polygon.representative_point()
        event, detail = _event(uid, SHAPE_TYPE, "h-e", now_s, stale_s, centre.y, centre.x)
        _shape(detail, [(lat, lon) for lon, lat in polygon.exterior.coords[:-1]], argb, fill_alpha=0x30)
    label = f"{zone.name} ({zone.role.value}" + (f", risk {zone.risk})" if zone.risk is not None else ")")
    _sub(detail, "contact", callsign=label)
    extra = {} if zone.risk is None else {"risk": str(zone.risk)}
    _sub(detail, "borderwatch", kind="zone", site=site, role=zone.role.value, name=zone.name, **extra)
    ET.SubElement(detail, "remarks").text = f"borderwatch {zone.role.value} zone of {site}: {label}"
    return _message(uid, stale_s, event)


def _event(
    uid: str,
    kind: str,
    how: str,
    now_s: float,
    stale_s: float,
    lat_deg: float,
    lon_deg: float,
    hae: float = UNKNOWN,
    ce: float = UNKNOWN,
    le: float = UNKNOWN,
) -> tuple[ET.Element, ET.Element]:
    if not (math.isfinite(lat_deg) and math.isfinite(lon_deg) and -90 <= lat_deg <= 90 and -180 <= lon_deg <= 180):
        raise ValueError(f"{uid}: position ({lat_deg}, {lon_deg}) is not on the earth")
    if not stale_s >= now_s:
        raise ValueError(f"{uid}: stale {stale_s} before now {now_s}")
    now = iso(now_s)
    event = ET.Element("event", version="2.0", uid=uid, type=kind, how=how, time=now, start=now, stale=iso(stale_s))
    _sub(
        event,
        "point",
        lat=_num(lat_deg, 7),
        lon=_num(lon_deg, 7),
        hae=_num(hae if math.isfinite(hae) else UNKNOWN, 1),
        ce=_num(max(ce, 0.0), 1),
        le=_num(max(le, 0.0), 1),
    )
    return event, ET.SubElement(event, "detail")


def _shape(detail: ET.Element, ring: Sequence[tuple[float, float]], argb: int, fill_alpha: int) -> None:
    """A closed drawn shape as TAK writes one: a ``link point`` per vertex, the first again at the end."""
    for lat, lon in [*ring, ring[0]]:
        _sub(detail, "link", point=f"{_num(lat, 7)},{_num(lon, 7)}")
    _sub(detail, "strokeColor", value=str(_signed(argb)))
    _sub(detail, "strokeWeight", value="3.0")
    _sub(detail, "fillColor", value=str(_signed((argb & 0x00FFFFFF) | (fill_alpha << 24))))
    _sub(detail, "labels_on", value="false")


def _sub(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k: v for k, v in attributes.items() if v is not None})


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def _signed(argb: int) -> int:
    return argb - (1 << 32) if argb >= 1 << 31 else argb


def _message(uid: str, stale_s: float, event: ET.Element) -> CotMessage:
    return CotMessage(uid, stale_s, ET.tostring(event, encoding="utf-8", xml_declaration=True))

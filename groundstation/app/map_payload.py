"""What the app's map page is sent: zones, routes, vehicles, AIS targets, detections and alerts as JSON-ready dicts.

Qt-free, so that what the map shows can be built and checked without a web view; the page
(web/map.js) draws these dicts as they are, and :mod:`.map_view` only passes them on.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from groundstation.fleet.state import VehicleState, vehicle_name
from groundstation.runs.maps import MapRoute
from groundstation.runs.style import (
    DETECTION_COLORS,
    SEVERITY_COLORS,
    UNKNOWN_SEVERITY_COLOR,
    launch_point_style,
    route_color,
    start_ring_radius,
    zone_style,
)
from missions.site import Role, Site, Zone
from vision.ais.model import AisTarget
from vision.alerts import Alert, RuleKind
from vision.detections import Detection, Detections

# The AIS alerts get a pin of their own: what they say is about a vessel's identity, not a zone's risk.
AIS_ALERT_MARKS = {RuleKind.DARK_VESSEL: "D", RuleKind.AIS_NOT_SEEN: "?"}
# ITU-R M.1371 ship types by their first digit (and a few second digits): enough to tell a tanker from a yacht.
_SHIP_TYPES = {
    30: "fishing", 31: "towing", 32: "towing", 33: "dredging", 34: "diving", 35: "military", 36: "sailing",
    37: "pleasure craft", 50: "pilot", 51: "search and rescue", 52: "tug", 53: "port tender",
    55: "law enforcement", 58: "medical transport",
}  # fmt: skip
_SHIP_KINDS = {2: "wing in ground", 4: "high-speed craft", 6: "passenger", 7: "cargo", 8: "tanker", 9: "other"}

_ROLE_NAMES = {
    Role.OPERATING_AREA: "Operating area",
    Role.NO_FLY: "No-fly zone",
    Role.WATCH: "Watch zone",
    Role.LAUNCH: "Launch point",
    Role.COASTLINE: "Coastline",
}
# Drawn bottom to top, as the preview maps draw them: outlines first, launch points on top.
_ROLE_ORDER = {Role.OPERATING_AREA: 0, Role.WATCH: 1, Role.NO_FLY: 2, Role.COASTLINE: 3, Role.LAUNCH: 4}


def zones_payload(site: Site, *, editable: bool) -> list[dict]:
    """The site's zones in drawing order, each with its index in ``site.zones``."""
    ordered = sorted(enumerate(site.zones), key=lambda iz: (_ROLE_ORDER.get(iz[1].role, 9), iz[1].risk or 0))
    return [zone_payload(index, zone, editable) for index, zone in ordered]


def zone_payload(index: int, zone: Zone, editable: bool) -> dict:
    role = _ROLE_NAMES.get(zone.role, zone.role.value)
    tooltip = [zone.name or role, role]
    if zone.role is Role.WATCH:
        tooltip[1] += f", risk {zone.risk}" if zone.risk is not None else ", risk not set"
    if zone.is_circle:
        tooltip.append(f"radius {zone.radius_m:.0f} m")
    payload: dict[str, Any] = {
        "index": index,
        "role": zone.role.value,
        "tooltip": tooltip,
        "style": zone_style(zone),
        "circle": None,
        "polygons": [],
        "lines": [],
        "points": [],
        "pointStyle": None,
    }
    shape = zone.shape_deg
    if zone.role is Role.LAUNCH:
        centres = [p if isinstance(p, shapely.Point) else p.centroid for p in _parts(shape)]
        payload["points"] = [[p.y, p.x] for p in centres]
        payload["pointStyle"] = launch_point_style()
    elif zone.is_circle:
        centre = shape.centroid
        payload["circle"] = {"center": [centre.y, centre.x], "radius": zone.radius_m}
    elif zone.role is Role.COASTLINE:
        payload["lines"] = [_latlon(line.coords) for line in _lines(shape, boundaries=True)]
    else:
        payload["polygons"] = [
            [_latlon(p.exterior.coords)] + [_latlon(r.coords) for r in p.interiors]
            for p in _parts(shape)
            if isinstance(p, shapely.Polygon)
        ]
        payload["lines"] = [_latlon(line.coords) for line in _lines(shape, boundaries=False)]
    # Only a single circle or polygon can be edited in place; anything else is redrawn instead.
    payload["editable"] = (
        editable
        and (payload["circle"] is not None or len(payload["polygons"]) == 1)
        and not (payload["lines"] or payload["points"])
    )
    return payload


def site_bounds(site: Site) -> list[list[float]] | None:
    """[[south, west], [north, east]] of every zone, circles included; None for a site with nothing drawn."""
    shapes = [site.frame.to_geo(site.local(z)) if z.is_circle else z.shape_deg for z in site.zones]
    shapes = [s for s in shapes if not s.is_empty]
    if not shapes:
        return None
    west, south, east, north = shapely.GeometryCollection(shapes).bounds
    return [[south, west], [north, east]]


def routes_payload(routes: Sequence[MapRoute]) -> list[dict]:
    """One dict per route with points; the first route of each group carries the group's start ring."""
    groups: dict[str, str] = {}
    payload = []
    for route in routes:
        if not route.points_deg:
            continue
        key = route.group or route.label
        start_radius = None
        if key not in groups:
            index = len(groups)
            groups[key] = route.color or route_color(index)
            start_radius = start_ring_radius(index)
        km = _length_m(route.points_deg) / 1000.0
        payload.append(
            {
                "label": route.label,
                "group": key,
                "color": route.color or groups[key],
                "points": [[lat, lon] for lat, lon in route.points_deg],
                "startRadius": start_radius,
                "tooltip": [route.label, f"{len(route.points_deg)} waypoints, {km:.1f} km"],
            }
        )
    return payload


def vehicle_payload(state: VehicleState) -> dict:
    placed = math.isfinite(state.lat_deg) and math.isfinite(state.lon_deg)
    details = [state.flight_mode.lower(), "armed" if state.armed else "disarmed"]
    numbers = []
    if math.isfinite(state.rel_alt_m):
        numbers.append(f"{state.rel_alt_m:.0f} m")
    if math.isfinite(state.ground_speed_m_s):
        numbers.append(f"{state.ground_speed_m_s:.1f} m/s")
    if math.isfinite(state.battery_pct):
        numbers.append(f"battery {state.battery_pct:.0f} %")
    tooltip = [vehicle_name(state.vehicle), ", ".join(details)]
    if numbers:
        tooltip.append(", ".join(numbers))
    if not state.link_ok:
        tooltip.append("link lost")
    return {
        "id": state.vehicle,
        "label": str(state.vehicle + 1),
        "lat": state.lat_deg if placed else None,
        "lon": state.lon_deg if placed else None,
        "heading": state.heading_deg if math.isfinite(state.heading_deg) else None,
        "lost": not state.link_ok,
        "color": route_color(state.vehicle),
        "tooltip": tooltip,
    }


def detections_payload(detections: Detections, untracked: Iterator[int]) -> list[dict]:
    """The geolocated detections; a tracked one is keyed by its track, so its next sighting moves its marker.

    ``untracked`` numbers the others: it must not restart between calls, or a new sighting would
    take over an old one's marker.
    """
    payload = []
    for d in detections:
        if not d.has_geo_position:
            continue
        if d.track_id is not None:
            key = f"{detections.source}#{d.track_id}"
            title = f"{d.object_class.value} #{d.track_id}"
        else:
            key = f"{detections.source}@{next(untracked)}"
            title = d.object_class.value
        vessel = vessel_label(d)
        payload.append(
            {
                "key": key,
                "lat": d.lat_deg,
                "lon": d.lon_deg,
                "color": DETECTION_COLORS[d.object_class],
                "label": vessel,
                "tooltip": [vessel or title, *([title] if vessel else []), f"{d.confidence:.0%} — {detections.source}"],
            }
        )
    return payload


def vessel_label(detection: Detection | Alert) -> str | None:
    """ "NAME (MMSI n)" for a track AIS has bound (or an alert about one), "MMSI n" without a name, else None."""
    if detection.mmsi is None:
        return None
    return f"{detection.vessel_name} (MMSI {detection.mmsi})" if detection.vessel_name else f"MMSI {detection.mmsi}"


def ais_targets_payload(targets: Sequence[AisTarget]) -> list[dict]:
    """The vessel table as the map shows it: the page keeps one marker per MMSI and drops those not sent."""
    return [ais_target_payload(t) for t in targets if math.isfinite(t.lat_deg) and math.isfinite(t.lon_deg)]


def ais_target_payload(target: AisTarget) -> dict:
    """One AIS target: its symbol turned to its heading (else its course; None: a plain mark), name and popup."""
    heading = target.heading_deg if target.heading_deg is not None else target.cog_deg
    motion = [
        f"SOG {target.sog_kn:.1f} kn" if target.sog_kn is not None else "SOG not available",
        f"COG {target.cog_deg:.0f}°" if target.cog_deg is not None else "COG not available",
    ]
    if target.heading_deg is not None:
        motion.append(f"heading {target.heading_deg:.0f}°")
    return {
        "mmsi": target.mmsi,
        "lat": target.lat_deg,
        "lon": target.lon_deg,
        "heading": heading,
        "moving": target.moving,
        "label": target.name or str(target.mmsi),
        "errorM": target.error_m,
        "lines": [
            target.name or f"MMSI {target.mmsi}",
            f"MMSI {target.mmsi}, class {target.ais_class.value}",
            f"call sign {target.callsign or '—'}",
            f"type {ship_type_text(target.ship_type)}",
            f"length {target.length_m:.0f} m" if target.length_m else "length —",
            ", ".join(motion),
            f"report {_age_text(target.age_s)} old, position ±{target.error_m:.0f} m",
        ],
    }


def ship_type_text(ship_type: int | None) -> str:
    if not ship_type:
        return "—"
    kind = _SHIP_TYPES.get(ship_type) or _SHIP_KINDS.get(ship_type // 10)
    return f"{ship_type} ({kind})" if kind else str(ship_type)


def _age_text(age_s: float) -> str:
    seconds = max(0, round(age_s))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def alert_payload(alert: Alert, evidence: str | None = None, unverified: bool = False) -> dict:
    """An alert's pin; ``evidence`` (who signed it, or why it is not verified) is its popup's last line, and an
    ``unverified`` one has a dashed red ring."""
    what = f"{alert.object_class.value}" + (f" #{alert.track_id}" if alert.track_id is not None else "")
    vessel = vessel_label(alert)
    return {
        "unverified": unverified,
        "id": alert.alert_id,
        "lat": alert.lat_deg,
        "lon": alert.lon_deg,
        "color": SEVERITY_COLORS.get(alert.severity, UNKNOWN_SEVERITY_COLOR),
        # "D" or "?" on a pin of its own for the AIS rules, None for the others' "!".
        "mark": AIS_ALERT_MARKS.get(alert.rule),
        "rule": alert.rule.value,
        "lines": [
            alert.message,
            f"rule: {alert.rule.value}, zone: {alert.zone} (risk {alert.risk}, {alert.severity})",
            f"{what} — {alert.source}",
            *([f"vessel: {vessel}"] if vessel else []),
            alert.iso_time,
            *([evidence] if evidence else []),
        ],
    }


def plain_text(text: str) -> str:
    """Attribution as text: Leaflet shows it as HTML, and an MBTiles file may come from anywhere."""
    return html.escape(re.sub(r"<[^>]*>", "", text or ""))


def _parts(shape: BaseGeometry) -> Iterator[BaseGeometry]:
    if hasattr(shape, "geoms"):
        for part in shape.geoms:
            yield from _parts(part)
    elif not shape.is_empty:
        yield shape


def _lines(shape: BaseGeometry, *, boundaries: bool) -> Iterator[BaseGeometry]:
    for part in _parts(shape):
        if isinstance(part, shapely.LineString | shapely.LinearRing):
            yield part
        elif boundaries and isinstance(part, shapely.Polygon):
            yield from _parts(part.boundary)


def _latlon(coords) -> list[list[float]]:
    return [[float(y), float(x)] for x, y, *_ in coords]


def _length_m(points_deg: Sequence[tuple[float, float]]) -> float:
    earth_radius_m = 6_371_008.8
    total = 0.0
    for (lat1, lon1), (lat2, lon2) in itertools.pairwise(points_deg):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        dp, dl = p2 - p1, math.radians(lon2 - lon1)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        total += 2 * earth_radius_m * math.asin(math.sqrt(a))
    return total

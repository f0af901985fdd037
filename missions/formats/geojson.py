"""GeoJSON sites (the convention of shared/data/README.md) and GeoJSON plan output."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from missions.errors import InputError
from missions.formats.roles import Unassigned, assign_defaults, with_site_altitude
from missions.site import DEFAULT_MAX_ALTITUDE_M, Role, Route, RoutePoint, Site, Zone

_ROUTE_ROLES = {"route", "patrol", "loop", "path"}


def read_site_geojson(path: str | Path) -> Site:
    source = str(path)
    document = _load_json(source)
    features = _features(source, document)
    zones: list[Zone] = []
    unassigned: list[Unassigned] = []
    route: list[RoutePoint] = []
    for index, feature in enumerate(features, start=1):
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise InputError(source, "properties must be an object", f"feature {index}")
        name = str(props.get("name") or f"feature {index}")
        label = f"feature {index} {name!r}" if props.get("name") else f"feature {index}"
        geometry = feature.get("geometry")
        if geometry is None:
            raise InputError(source, "has no geometry", label)
        for part_no, shape in enumerate(_shapes(source, label, geometry), start=1):
            part_name = name if part_no == 1 else f"{name} (part {part_no})"
            role_text = props.get("role")
            if role_text is None:
                unassigned.append(Unassigned(part_name, shape))
                continue
            if str(role_text).strip().lower() in _ROUTE_ROLES:
                route += _route_points(source, label, shape)
                continue
            try:
                role = Role.parse(str(role_text))
            except ValueError as exc:
                raise InputError(source, str(exc), label) from None
            zones.append(_zone(source, label, role, part_name, shape, props))
    zones, lines, warnings = assign_defaults(source, zones, unassigned)
    for line in lines:
        route += _route_points(source, line.name, line.shape_deg)
    if not zones and not route:
        raise InputError(source, "no features: expected an operating area, no-fly and watch zones, launch points")
    name = str(document.get("name") or Path(source).stem) if isinstance(document, dict) else Path(source).stem
    return Site(
        name=name,
        source=source,
        zones=tuple(zones),
        max_altitude_m=with_site_altitude(zones, DEFAULT_MAX_ALTITUDE_M),
        route=tuple(route),
        warnings=tuple(warnings),
    )


def _load_json(source: str) -> Any:
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, f"cannot read: {exc}") from None
    if not text.strip():
        raise InputError(source, "the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _features(source: str, document: Any) -> list[dict]:
    if not isinstance(document, dict) or "type" not in document:
        raise InputError(source, "not GeoJSON: expected an object with a 'type'")
    kind = document["type"]
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list):
            raise InputError(source, "FeatureCollection has no 'features' list")
        for index, feature in enumerate(features, start=1):
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise InputError(source, "is not a GeoJSON Feature", f"feature {index}")
        return features
    if kind == "Feature":
        return [document]
    if kind in _GEOMETRY_TYPES:
        return [{"type": "Feature", "properties": {}, "geometry": document}]
    raise InputError(source, f"not GeoJSON: unknown type {kind!r}")


_GEOMETRY_TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}


def _position(source: str, label: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise InputError(source, f"a position must be [lon, lat], got {value!r}", label)
    try:
        lon, lat = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise InputError(source, f"a position must hold numbers, got {value!r}", label) from None
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InputError(source, f"position {value!r} is not finite", label)
    return lon, lat


def _ring(source: str, label: str, value: Any) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise InputError(source, "a polygon ring must be a list of positions", label)
    ring = [_position(source, label, p) for p in value]
    distinct = {p for p in ring}
    if len(distinct) < 3:
        raise InputError(source, f"degenerate polygon: a ring needs 3 distinct points, has {len(distinct)}", label)
    return ring


def _shapes(source: str, label: str, geometry: Any) -> list[BaseGeometry]:
    if not isinstance(geometry, dict) or geometry.get("type") not in _GEOMETRY_TYPES:
        raise InputError(
            source, f"unsupported geometry {geometry.get('type') if isinstance(geometry, dict) else geometry!r}", label
        )
    kind = geometry["type"]
    coords = geometry.get("coordinates")
    if coords is None or (isinstance(coords, list) and not coords):
        raise InputError(source, f"{kind} has no coordinates", label)
    if kind == "Point":
        return [shapely.Point(_position(source, label, coords))]
    if kind == "MultiPoint":
        return [shapely.Point(_position(source, label, c)) for c in coords]
    if kind == "LineString":
        return [_line(source, label, coords)]
    if kind == "MultiLineString":
        return [_line(source, label, c) for c in coords]
    if kind == "Polygon":
        return [_polygon(source, label, coords)]
    return [_polygon(source, label, c) for c in coords]


def _line(source: str, label: str, coords: Any) -> shapely.LineString:
    points = [_position(source, label, p) for p in coords]
    if len(points) < 2:
        raise InputError(source, "a LineString needs at least 2 positions", label)
    return shapely.LineString(points)


def _polygon(source: str, label: str, rings: Any) -> shapely.Polygon:
    if not isinstance(rings, list) or not rings:
        raise InputError(source, "a Polygon needs at least one ring", label)
    shell, *holes = (_ring(source, label, r) for r in rings)
    return shapely.Polygon(shell, holes)


def _zone(source: str, label: str, role: Role, name: str, shape: BaseGeometry, props: dict) -> Zone:
    kind = shape.geom_type
    radius = _number(source, label, props, "radius_m")
    risk = props.get("risk")
    altitude = _number(source, label, props, "max_altitude_m")
    if role is Role.WATCH:
        if risk is None:
            raise InputError(source, "a watch zone needs a 'risk' from 1 to 5", label)
        if not isinstance(risk, int | float) or isinstance(risk, bool) or risk != int(risk) or not 1 <= risk <= 5:
            raise InputError(source, f"risk must be a whole number from 1 to 5, got {risk!r}", label)
        risk = int(risk)
    else:
        risk = None
    if altitude is not None and altitude <= 0:
        raise InputError(source, f"max_altitude_m must be positive, got {altitude:g}", label)
    if kind == "Point" and role in (Role.NO_FLY, Role.OPERATING_AREA, Role.WATCH):
        if radius is None:
            raise InputError(source, f"a {role.value} Point needs 'radius_m' (a circle)", label)
        if radius <= 0:
            raise InputError(source, f"radius_m must be positive, got {radius:g}", label)
        if role is Role.WATCH:
            raise InputError(source, "a watch zone must be a Polygon", label)
        return Zone(role, name, shape, radius_m=radius, max_altitude_m=altitude)
    expected = {
        Role.OPERATING_AREA: "Polygon",
        Role.NO_FLY: "Polygon",
        Role.WATCH: "Polygon",
        Role.LAUNCH: "Point",
        Role.COASTLINE: "LineString",
    }[role]
    if kind != expected:
        raise InputError(source, f"a {role.value} must be a {expected}, got a {kind}", label)
    return Zone(role, name, shape, risk=risk, max_altitude_m=altitude)


def _number(source: str, label: str, props: dict, key: str) -> float | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(source, f"{key} must be a number, got {value!r}", label)
    return float(value)


def zone_from_feature(source: str, feature: dict, label: str = "feature") -> Zone:
    """One zone from a GeoJSON Feature whose properties give its role, by the rules files are read by.

    For shapes drawn or edited by hand: what is accepted here is what a saved site reads back.
    """
    props = feature.get("properties") or {}
    if not isinstance(props, dict) or props.get("role") is None:
        raise InputError(source, "a zone needs properties with a 'role'", label)
    try:
        role = Role.parse(str(props["role"]))
    except ValueError as exc:
        raise InputError(source, str(exc), label) from None
    geometry = feature.get("geometry")
    if geometry is None:
        raise InputError(source, "has no geometry", label)
    shapes = _shapes(source, label, geometry)
    if len(shapes) != 1:
        raise InputError(source, f"a zone is one shape, got {len(shapes)}", label)
    return _zone(source, label, role, str(props.get("name") or label), shapes[0], props)


def _route_points(source: str, label: str, shape: BaseGeometry) -> list[RoutePoint]:
    if shape.geom_type != "LineString":
        raise InputError(source, f"a route must be a LineString, got a {shape.geom_type}", label)
    return [RoutePoint(lat_deg=y, lon_deg=x) for x, y in shape.coords]


# ---- output ---------------------------------------------------------------------------


def site_features(site: Site) -> list[dict]:
    """The site's zones as GeoJSON features in the shared convention."""
    features = []
    for zone in site.zones:
        props: dict[str, Any] = {"role": zone.role.value, "name": zone.name}
        if zone.radius_m is not None:
            props["radius_m"] = zone.radius_m
        if zone.risk is not None:
            props["risk"] = zone.risk
        if zone.max_altitude_m is not None:
            props["max_altitude_m"] = zone.max_altitude_m
        features.append({"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(zone.shape_deg)})
    return features


def write_geojson(site: Site, path: str | Path, routes: Sequence[Route] = ()) -> Path:
    """Write the site's zones and ``routes`` as a FeatureCollection; the path written.

    Each route is a LineString feature with role "route", its name and its properties; a
    point without altitude is written [lon, lat]. The site's own route is written only when
    it is one of ``routes``.
    """
    features = site_features(site)
    for route in routes:
        features.append(
            {
                "type": "Feature",
                "properties": {"role": "route", "name": route.name, **route.properties},
                "geometry": {"type": "LineString", "coordinates": [_route_position(p) for p in route.points]},
            }
        )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"type": "FeatureCollection", "name": site.name, "features": features}
    out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return out


def _route_position(point: RoutePoint) -> list[float]:
    if point.alt_m is None:
        return [point.lon_deg, point.lat_deg]
    return [point.lon_deg, point.lat_deg, point.alt_m]

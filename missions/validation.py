"""Checks a site before anything is planned over it.

Every problem names the file and the feature. Geometry is repaired only where the repair
is unambiguous (a ring drawn the wrong way, a repeated vertex, a spike that folds back
on itself); a figure-eight, where either lobe could be meant, is refused.
"""

from __future__ import annotations

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from missions.errors import InputError, RequestError
from missions.geo import haversine_m
from missions.site import Role, Site, Zone

# A feature this far from the rest of the site is a typo or a swapped pair, not a port.
_FAR_M = 200_000.0
_MIN_AREA_M2 = 1.0
# A repair may change a polygon's area by at most this share, or it is not unambiguous.
_REPAIR_AREA_TOLERANCE = 0.01


def validate_site(site: Site) -> Site:
    """The site with unambiguous repairs applied and warnings recorded; raises InputError."""
    for zone in site.zones:
        _check_range(site.source, zone)
    for point in site.route:
        _check_lat_lon(site.source, "route", point.lat_deg, point.lon_deg)
    _check_swapped(site)
    repaired: list[Zone] = []
    warnings: list[str] = []
    for zone in site.zones:
        fixed, note = _repair(site, zone)
        repaired.append(fixed)
        if note:
            warnings.append(note)
    site = site.with_zones(tuple(repaired), tuple(warnings))
    _check_areas(site)
    _check_launch_points(site)
    warnings = _watch_zone_notes(site)
    return site.with_zones(site.zones, tuple(warnings)) if warnings else site


def check_altitude(site: Site, altitude_m: float, what: str = "flight altitude") -> None:
    if altitude_m <= 0:
        raise RequestError(site.source, "altitude_m", what, f"{altitude_m:g} m must be above the ground")
    if altitude_m > site.max_altitude_m:
        raise RequestError(
            site.source,
            "altitude_m",
            what,
            f"{altitude_m:g} m is above the site's altitude limit of {site.max_altitude_m:g} m",
        )


def _label(zone: Zone) -> str:
    return f"{zone.role.value} {zone.name!r}"


def _check_lat_lon(source: str, label: str, lat: float, lon: float) -> None:
    if abs(lat) > 90 and abs(lon) <= 90:
        raise InputError(
            source,
            f"latitude {lat:g} is out of range: the coordinates are probably swapped (GeoJSON is lon, lat)",
            label,
        )
    if abs(lat) > 90 or abs(lon) > 180:
        raise InputError(source, f"coordinate (lon {lon:g}, lat {lat:g}) is out of range", label)


def _check_range(source: str, zone: Zone) -> None:
    coords = shapely.get_coordinates(zone.shape_deg)
    for lon, lat in coords:
        _check_lat_lon(source, _label(zone), lat, lon)


def _check_swapped(site: Site) -> None:
    """A feature far from the rest of the site that swapping lat/lon brings home was swapped."""
    if len(site.zones) < 2:
        return
    centres = [z.shape_deg.centroid for z in site.zones]

    def near(a, b) -> bool:
        return haversine_m(a.y, a.x, b.y, b.x) < _FAR_M

    # The reference is the feature most others agree with; the operating area breaks ties.
    ref_zone, ref = max(
        zip(site.zones, centres, strict=True),
        key=lambda zc: (sum(near(zc[1], c) for c in centres), zc[0].role is Role.OPERATING_AREA),
    )
    for zone, c in zip(site.zones, centres, strict=True):
        if near(c, ref):
            continue
        if abs(c.x) <= 90 and haversine_m(ref.y, ref.x, c.x, c.y) < _FAR_M:
            raise InputError(
                site.source,
                "coordinates are probably swapped (lat, lon instead of lon, lat): "
                f"swapped, the feature lies beside {_label(ref_zone)}",
                _label(zone),
            )
        distance_km = haversine_m(ref.y, ref.x, c.y, c.x) / 1000
        raise InputError(site.source, f"lies {distance_km:.0f} km from {_label(ref_zone)}", _label(zone))


def _repair(site: Site, zone: Zone) -> tuple[Zone, str | None]:
    shape = zone.shape_deg
    if shape.geom_type != "Polygon":
        if shape.geom_type == "LineString" and shapely.LineString(shape).length == 0:
            raise InputError(site.source, "degenerate line: all its points coincide", _label(zone))
        return zone, None
    if shape.is_valid:
        area = site.frame.to_local(shape).area
        if area < _MIN_AREA_M2:
            raise InputError(site.source, f"degenerate polygon: area {area:.2g} m²", _label(zone))
        return zone, None
    reason = explain_validity(shape)
    fixed = _polygonal(shapely.make_valid(shape))
    if fixed.is_empty or site.frame.to_local(fixed).area < _MIN_AREA_M2:
        raise InputError(site.source, f"degenerate polygon ({reason}): it encloses no area", _label(zone))
    if fixed.geom_type != "Polygon":
        raise InputError(
            site.source,
            f"self-intersecting polygon ({reason}) that splits into {len(fixed.geoms)} parts; "
            "redraw it: which part is meant is ambiguous",
            _label(zone),
        )
    # The area the drawing meant: the ring's own outline, before the knot is cut.
    drawn_area = shapely.Polygon(site.frame.to_local(shape).exterior).buffer(0).area
    fixed_area = site.frame.to_local(fixed).area
    if abs(fixed_area - drawn_area) > _REPAIR_AREA_TOLERANCE * max(drawn_area, fixed_area):
        raise InputError(
            site.source,
            f"self-intersecting polygon ({reason}); repairing it would change its area from "
            f"{drawn_area:.0f} to {fixed_area:.0f} m², so it is left to you",
            _label(zone),
        )
    repaired = Zone(zone.role, zone.name, fixed, zone.radius_m, zone.risk, zone.max_altitude_m)
    return repaired, f"{site.source}: {_label(zone)}: repaired an invalid polygon ({reason})"


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    parts = [g for g in getattr(geometry, "geoms", [geometry]) if g.geom_type in ("Polygon", "MultiPolygon")]
    merged = shapely.union_all(parts)
    if merged.geom_type == "MultiPolygon" and len(merged.geoms) == 1:
        return merged.geoms[0]
    return merged


def _check_areas(site: Site) -> None:
    if not site.operating_areas:
        return
    keep_in = site.keep_in_m
    if keep_in.geom_type != "Polygon":
        names = ", ".join(repr(z.name) for z in site.operating_areas)
        raise InputError(site.source, f"the operating areas ({names}) do not join into one connected area")
    free = site.free_space()
    if free.is_empty:
        raise InputError(site.source, "the no-fly zones cover the whole operating area")


def _check_launch_points(site: Site) -> None:
    keep_in = site.keep_in_m
    for zone in site.launch:
        p = site.frame.to_local(zone.shape_deg)
        if keep_in is not None and not keep_in.covers(p):
            distance = keep_in.exterior.distance(p)
            raise InputError(
                site.source,
                f"launch point is outside the operating area ({distance:.0f} m from its edge)",
                _label(zone),
            )
        for nofly in site.no_fly:
            if site.local(nofly).intersects(p):
                raise InputError(site.source, f"launch point is inside no-fly zone {nofly.name!r}", _label(zone))


def _watch_zone_notes(site: Site) -> list[str]:
    keep_in = site.keep_in_m
    if keep_in is None:
        return []
    notes = []
    for zone in site.watch:
        shape = site.local(zone)
        if not shape.intersects(keep_in):
            notes.append(f"{site.source}: {_label(zone)} lies outside the operating area; no drone can see it")
    return notes

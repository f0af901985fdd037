"""The site: where drones may fly, where they must not, and what they watch.

Zones are kept in degrees exactly as they were read, so that files round-trip without
drift; their metric shapes are derived once per site in the site's :class:`LocalFrame`.
"""

from __future__ import annotations

import enum
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from missions.geo import LocalFrame, circle_polygon
from missions.plan import FenceCircle, FencePolygon, Waypoint

DEFAULT_MAX_ALTITUDE_M = 120.0
DEFAULT_WATCH_RISK = 1  # of a watch zone whose file gives no risk


class Role(enum.Enum):
    OPERATING_AREA = "operating-area"
    NO_FLY = "no-fly"
    WATCH = "watch"
    LAUNCH = "launch"
    COASTLINE = "coastline"

    @classmethod
    def parse(cls, text: str) -> Role:
        normalised = text.strip().lower().replace("_", "-").replace(" ", "-")
        aliases = {
            "keep-in": cls.OPERATING_AREA,
            "inclusion": cls.OPERATING_AREA,
            "operating": cls.OPERATING_AREA,
            "operatingarea": cls.OPERATING_AREA,
            "keep-out": cls.NO_FLY,
            "exclusion": cls.NO_FLY,
            "nofly": cls.NO_FLY,
            "no-fly-zone": cls.NO_FLY,
            "watch-zone": cls.WATCH,
            "home": cls.LAUNCH,
            "rally": cls.LAUNCH,
            "launch-point": cls.LAUNCH,
            "shore": cls.COASTLINE,
            "shoreline": cls.COASTLINE,
            "coast": cls.COASTLINE,
        }
        for role in cls:
            if role.value == normalised:
                return role
        if normalised in aliases:
            return aliases[normalised]
        raise ValueError(f"unknown role {text!r} (expected one of {', '.join(r.value for r in cls)})")


_QUAD_SEGS = 4


def grow(shape: BaseGeometry, margin_m: float) -> BaseGeometry:
    """Buffer outwards by at least the margin everywhere.

    A round buffer's arcs are polygons inscribed in the true offset; enlarging the radius
    makes their edges tangent to it, so no point of the result is nearer than the margin.
    """
    return shape.buffer(margin_m / math.cos(math.pi / (4 * _QUAD_SEGS)), quad_segs=_QUAD_SEGS)


@dataclass(frozen=True)
class Zone:
    """One feature of a site, in lon/lat degrees.

    A keep-out circle is its centre Point with ``radius_m`` set; it is exported as a
    circle and approximated, from outside, by a polygon for computation.
    """

    role: Role
    name: str
    shape_deg: BaseGeometry
    radius_m: float | None = None
    risk: int | None = None
    max_altitude_m: float | None = None

    @property
    def is_circle(self) -> bool:
        return self.radius_m is not None


@dataclass(frozen=True)
class RoutePoint:
    """A point of a route read from a file (a `.plan` mission or a LineString)."""

    lat_deg: float
    lon_deg: float
    alt_m: float | None = None


@dataclass(frozen=True)
class Route:
    """A named route as the file writers take it: a site's own route, or the path of one sortie.

    ``properties`` are written beside the name by the formats that carry them (GeoJSON).
    """

    name: str
    points: tuple[RoutePoint, ...]
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(self.points))


@dataclass(frozen=True)
class Site:
    name: str
    source: str
    zones: tuple[Zone, ...]
    max_altitude_m: float = DEFAULT_MAX_ALTITUDE_M
    route: tuple[RoutePoint, ...] = ()
    frame: LocalFrame = field(default=None, compare=False)  # type: ignore[assignment]
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.frame is None:
            shapes = [z.shape_deg for z in self.zones] or [shapely.Point(p.lon_deg, p.lat_deg) for p in self.route]
            if not shapes:
                shapes = [shapely.Point(0.0, 0.0)]
            object.__setattr__(self, "frame", LocalFrame.around(shapely.GeometryCollection(shapes)))

    def with_zones(self, zones: tuple[Zone, ...], warnings: tuple[str, ...] = ()) -> Site:
        return Site(
            self.name, self.source, zones, self.max_altitude_m, self.route, self.frame, self.warnings + warnings
        )

    def zones_of(self, role: Role) -> tuple[Zone, ...]:
        return tuple(z for z in self.zones if z.role is role)

    @property
    def operating_areas(self) -> tuple[Zone, ...]:
        return self.zones_of(Role.OPERATING_AREA)

    @property
    def no_fly(self) -> tuple[Zone, ...]:
        return self.zones_of(Role.NO_FLY)

    @property
    def watch(self) -> tuple[Zone, ...]:
        return self.zones_of(Role.WATCH)

    @property
    def launch(self) -> tuple[Zone, ...]:
        return self.zones_of(Role.LAUNCH)

    @property
    def coastline(self) -> Zone | None:
        lines = self.zones_of(Role.COASTLINE)
        return lines[0] if lines else None

    def local(self, zone: Zone) -> BaseGeometry:
        """The zone's shape in metres (a keep-out circle as its enclosing polygon)."""
        shape = self.frame.to_local(zone.shape_deg)
        if zone.is_circle:
            # Keep-outs are approximated from outside, keep-ins from inside: both err on the safe side.
            return circle_polygon(shape, zone.radius_m, enclosing=zone.role is not Role.OPERATING_AREA)
        return shape

    @cached_property
    def keep_in_m(self) -> shapely.Polygon | None:
        """The union of the operating areas, or None when the site has none."""
        areas = [self.local(z) for z in self.operating_areas]
        if not areas:
            return None
        return shapely.union_all(areas)

    @cached_property
    def keep_out_m(self) -> BaseGeometry:
        return shapely.union_all([self.local(z) for z in self.no_fly])

    def free_space(self, margin_m: float = 0.0) -> BaseGeometry:
        """Where a drone may be: keep-in shrunk by the margin, minus keep-outs grown by it."""
        if self.keep_in_m is None:
            raise ValueError("site has no operating area")
        keep_in = self.keep_in_m.buffer(-margin_m, join_style="mitre") if margin_m else self.keep_in_m
        if self.keep_out_m.is_empty:
            return keep_in
        return keep_in.difference(grow(self.keep_out_m, margin_m) if margin_m else self.keep_out_m)

    @cached_property
    def area_m2(self) -> float:
        """Area to patrol: keep-in minus keep-outs."""
        return float(self.free_space(0.0).area) if self.keep_in_m is not None else 0.0

    def launch_points_m(self) -> list[shapely.Point]:
        return [self.frame.to_local(z.shape_deg) for z in self.launch]


def water_side(site: Site, coast: shapely.LineString, probe_m: float) -> int:
    """+1 when the water is to the left of the coastline's direction, −1 when to the right.

    The operating area of a coastal patrol lies mostly over the water, so the side whose
    offset strip holds more of it is the water side.
    """
    keep_in = site.keep_in_m
    left = coast.offset_curve(probe_m / 2).buffer(probe_m / 2, cap_style="flat")
    right = coast.offset_curve(-probe_m / 2).buffer(probe_m / 2, cap_style="flat")
    return 1 if left.intersection(keep_in).area >= right.intersection(keep_in).area else -1


def fence_from_site(site: Site) -> tuple[tuple[FencePolygon, ...], tuple[FenceCircle, ...], tuple[Waypoint, ...]]:
    """The geofence and rally points of a site, as a `.plan` can hold them.

    QGroundControl fence polygons have no holes: a hole in an operating area becomes an
    exclusion polygon of its own, which keeps the same free space. A hole in a no-fly
    zone (a place one may fly, inside a keep-out) cannot be said at all, so the no-fly
    zone is exported whole — more conservative than the site — with a warning.
    Watch zones and the coastline are not fences and are not exported.
    """
    polygons: list[FencePolygon] = []
    circles: list[FenceCircle] = []
    for zone in site.operating_areas + site.no_fly:
        inclusion = zone.role is Role.OPERATING_AREA
        if zone.is_circle:
            centre = zone.shape_deg.centroid
            circles.append(FenceCircle(centre.y, centre.x, float(zone.radius_m), inclusion))
            continue
        for part in _polygons(zone):
            polygons.append(FencePolygon(_open_ring(part.exterior.coords), inclusion))
            if not part.interiors:
                continue
            if inclusion:
                polygons.extend(FencePolygon(_open_ring(hole.coords), False) for hole in part.interiors)
            else:
                warnings.warn(
                    f"{site.source}: no-fly zone {zone.name!r} has holes, which a .plan fence cannot hold; "
                    "exported without them (the whole outline is kept out)",
                    stacklevel=2,
                )
    rally = tuple(Waypoint(z.shape_deg.centroid.y, z.shape_deg.centroid.x, 0.0) for z in site.launch)
    return tuple(polygons), tuple(circles), rally


def _polygons(zone: Zone) -> list[shapely.Polygon]:
    shape = zone.shape_deg
    if isinstance(shape, shapely.Polygon):
        return [shape]
    if isinstance(shape, shapely.MultiPolygon):
        return list(shape.geoms)
    raise ValueError(f"zone {zone.name!r}: a {shape.geom_type} cannot be a fence (Polygon or circle expected)")


def _open_ring(coords: Any) -> tuple[tuple[float, float], ...]:
    """(lat, lon) vertices without the closing repeat a shapely ring carries."""
    points = [(float(c[1]), float(c[0])) for c in coords]
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    return tuple(points)

"""The site: where drones may fly, where they must not, and what they watch.

Zones are kept in degrees exactly as they were read, so that files round-trip without
drift; their metric shapes are derived once per site in the site's :class:`LocalFrame`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from functools import cached_property

import shapely
from shapely.geometry.base import BaseGeometry

from missions.geo import LocalFrame, circle_polygon

DEFAULT_MAX_ALTITUDE_M = 120.0


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

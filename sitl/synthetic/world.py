"""A synthetic port for the simulated cameras: water, land, quays and things that move.

The world is built from a site alone, deterministically from a seed, in the site's metric
frame (ENU metres, z = 0 the sea). Where the site draws a coastline the land lies on the
side away from the operating area's water; where it does not (a port's operating area is
mostly harbour), the facilities the site names are land — quays, terminals, heliports,
launch pads — and the rest is water.

Moving things follow polylines back and forth at constant speed, so the position of every
object at any time is a pure function of that time: the renderer, the ground-truth sidecar
and a test can all ask "where was boat 3 at t = 12.5 s" and get the same answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from missions.site import Role, Site, water_side
from vision.detections import ObjectClass

# Zone names that say "this is ground, not water".
_LAND_WORDS = re.compile(
    r"quay|wharf|terminal|yard|gate|road|parking|depot|airport|heliport|warehouse|pad|post|station|berths?\b",
    re.IGNORECASE,
)
_PAD_RADIUS_M = 60.0
_CONTEXT_M = 1500.0


@dataclass(frozen=True)
class Kind:
    """What an object looks like from above: its class, footprint and colours (BGR)."""

    name: str
    object_class: ObjectClass
    length_m: float
    beam_m: float
    speed_m_s: float


VESSEL_KINDS = (
    Kind("rib", ObjectClass.VESSEL, 7.0, 2.6, 11.0),
    Kind("fast boat", ObjectClass.VESSEL, 11.0, 3.2, 9.0),
    Kind("fishing boat", ObjectClass.VESSEL, 18.0, 5.5, 5.0),
    Kind("patrol boat", ObjectClass.VESSEL, 26.0, 6.5, 7.0),
    Kind("coaster", ObjectClass.VESSEL, 70.0, 12.0, 4.0),
    Kind("container ship", ObjectClass.VESSEL, 140.0, 22.0, 3.0),
)
VEHICLE_KINDS = (
    Kind("car", ObjectClass.VEHICLE, 4.6, 1.9, 8.0),
    Kind("van", ObjectClass.VEHICLE, 5.8, 2.1, 7.0),
    Kind("truck", ObjectClass.VEHICLE, 14.0, 2.6, 6.0),
)
PERSON_KIND = Kind("person", ObjectClass.PERSON, 0.7, 0.7, 1.3)

_HULL_COLOURS = ((235, 235, 235), (40, 40, 190), (150, 70, 20), (30, 30, 30), (20, 120, 230), (60, 140, 60))
_VEHICLE_COLOURS = ((230, 230, 230), (30, 30, 30), (40, 40, 200), (170, 90, 30), (160, 160, 160), (40, 170, 220))
_PERSON_COLOURS = ((40, 90, 230), (200, 200, 40), (30, 200, 240), (200, 60, 60))


@dataclass(frozen=True)
class WorldObject:
    """One thing in the world, going back and forth along `path_m` (a stationary one has speed 0)."""

    id: int
    kind: Kind
    colour_bgr: tuple[int, int, int]
    path_m: shapely.LineString
    speed_m_s: float
    phase_m: float = 0.0

    @property
    def object_class(self) -> ObjectClass:
        return self.kind.object_class

    def pose_at(self, time_s: float) -> tuple[float, float, float, float]:
        """(x_m, y_m, heading_deg clockwise from north, speed_m_s) at a time."""
        length = self.path_m.length
        if length == 0 or self.speed_m_s == 0:
            x_m, y_m = self.path_m.coords[0][:2]
            return x_m, y_m, _heading(self.path_m, 0.0, length), 0.0
        travelled = (self.phase_m + self.speed_m_s * time_s) % (2 * length)
        forward = travelled <= length
        along = travelled if forward else 2 * length - travelled
        point = self.path_m.interpolate(along)
        heading = _heading(self.path_m, along, length)
        return point.x, point.y, heading if forward else (heading + 180.0) % 360.0, self.speed_m_s

    def footprint_m(self, time_s: float) -> np.ndarray:
        """The object's outline (N, 2) in site metres at a time: a hull with a bow, a box, or a disc."""
        x_m, y_m, heading_deg, _ = self.pose_at(time_s)
        return place(outline(self.kind), x_m, y_m, heading_deg)


def outline(kind: Kind) -> np.ndarray:
    """The footprint in the object's own frame: x to starboard, y forward, metres."""
    half_l, half_b = kind.length_m / 2, kind.beam_m / 2
    if kind.object_class is ObjectClass.VESSEL:
        shoulder = half_l - min(kind.beam_m * 1.2, kind.length_m * 0.3)
        return np.array([[-half_b, -half_l], [half_b, -half_l], [half_b, shoulder], [0.0, half_l], [-half_b, shoulder]])
    if kind.object_class is ObjectClass.PERSON:
        angles = np.linspace(0, 2 * math.pi, 8, endpoint=False)
        return np.column_stack([np.cos(angles) * half_b, np.sin(angles) * half_l])
    return np.array([[-half_b, -half_l], [half_b, -half_l], [half_b, half_l], [-half_b, half_l]])


def place(shape_m: np.ndarray, x_m: float, y_m: float, heading_deg: float) -> np.ndarray:
    """Turn a body-frame outline to a heading (clockwise from north) and move it to (x, y)."""
    h = math.radians(heading_deg)
    # Body forward (0, 1) must point along the heading: (sin h, cos h) in ENU.
    rot = np.array([[math.cos(h), math.sin(h)], [-math.sin(h), math.cos(h)]])
    return shape_m @ rot.T + np.array([x_m, y_m])


def _heading(path: shapely.LineString, along_m: float, length_m: float) -> float:
    a = path.interpolate(max(0.0, min(along_m, length_m - 0.5)))
    b = path.interpolate(min(length_m, max(along_m, 0.0) + 0.5))
    return math.degrees(math.atan2(b.x - a.x, b.y - a.y)) % 360.0


@dataclass(frozen=True)
class World:
    """Water, land and objects of one site, in the site's metres."""

    site: Site
    land_m: BaseGeometry
    extent_m: shapely.Polygon
    objects: tuple[WorldObject, ...]
    clutter_m: tuple[np.ndarray, ...] = ()

    @cached_property
    def water_m(self) -> BaseGeometry:
        return self.extent_m.difference(self.land_m)

    @cached_property
    def shore_parts_m(self) -> tuple[shapely.LineString, ...]:
        """The edge between land and water inside the operating area, as lines."""
        keep_in = self.site.keep_in_m if self.site.keep_in_m is not None else self.extent_m
        shore = self.land_m.boundary.intersection(keep_in)
        return tuple(p for p in shapely.get_parts(shore) if p.geom_type == "LineString" and p.length > 0)

    @cached_property
    def shore_length_m(self) -> float:
        return float(sum(p.length for p in self.shore_parts_m))

    @cached_property
    def watch_m(self) -> dict[str, BaseGeometry]:
        return {z.name: self.site.local(z) for z in self.site.watch}

    @classmethod
    def for_site(cls, site: Site, seed: int = 0, density: float = 1.0) -> World:
        """A world with vessels crossing each watch zone on the water, vehicles on land, people ashore."""
        rng = np.random.default_rng(seed)
        keep_in = site.keep_in_m if site.keep_in_m is not None else site.keep_out_m.buffer(500.0)
        extent = shapely.box(*keep_in.buffer(_CONTEXT_M).bounds)
        land = land_of(site, extent)
        water = extent.difference(land)
        objects: list[WorldObject] = []

        def add(kind: Kind, path: shapely.LineString, moving: bool = True) -> None:
            colours = {
                ObjectClass.VESSEL: _HULL_COLOURS,
                ObjectClass.VEHICLE: _VEHICLE_COLOURS,
                ObjectClass.PERSON: _PERSON_COLOURS,
            }[kind.object_class]
            speed = kind.speed_m_s * float(rng.uniform(0.7, 1.2)) if moving else 0.0
            objects.append(
                WorldObject(
                    id=len(objects) + 1,
                    kind=kind,
                    colour_bgr=colours[int(rng.integers(len(colours)))],
                    path_m=path,
                    speed_m_s=speed,
                    phase_m=float(rng.uniform(0, 2 * path.length)),
                )
            )

        small_vessels, big_vessels = VESSEL_KINDS[:4], VESSEL_KINDS[4:]
        for zone in site.watch:
            shape = site.local(zone)
            sea = shape.intersection(water.buffer(-20.0))
            ground = shape.intersection(land.buffer(-8.0))
            for _ in range(round(5 * density) if sea.area > 0.2 * shape.area else 0):
                path = _chord_through(rng, shape, water.buffer(-15.0), beyond_m=250.0)
                if path is not None:
                    add(small_vessels[int(rng.integers(len(small_vessels)))], path)
            for _ in range(round(2 * density) if sea.area > 0.2 * shape.area else 0):
                path = _chord_through(rng, shape, water.buffer(-60.0), beyond_m=400.0)
                if path is not None:
                    add(big_vessels[int(rng.integers(len(big_vessels)))], path, moving=rng.random() < 0.5)
            for _ in range(round(6 * density) if ground.area > 0 else 0):
                path = _chord_through(rng, ground, ground, beyond_m=0.0)
                if path is not None:
                    add(VEHICLE_KINDS[int(rng.integers(len(VEHICLE_KINDS)))], path)
        shore = land.intersection(keep_in).boundary
        for _ in range(round(12 * density) if shore.length > 0 else 0):
            start = shore.interpolate(float(rng.uniform(0, shore.length)))
            inland = land.buffer(-3.0)
            if inland.is_empty:
                break
            a = nearest_points(inland, start)[0]
            angle = rng.uniform(0, 2 * math.pi)
            b = shapely.Point(a.x + 30 * math.cos(angle), a.y + 30 * math.sin(angle))
            path = shapely.LineString([a, b])
            if inland.covers(path):
                add(PERSON_KIND, path, moving=rng.random() < 0.7)
        for _ in range(round(6 * density)):
            path = _chord_through(rng, keep_in.intersection(water), water.buffer(-30.0), beyond_m=300.0)
            if path is not None:
                add(small_vessels[int(rng.integers(len(small_vessels)))], path)
        return cls(site=site, land_m=land, extent_m=extent, objects=tuple(objects), clutter_m=_containers(rng, land))

    def visible_objects(self, box_m: tuple[float, float, float, float], time_s: float) -> list[WorldObject]:
        """Objects whose footprint may lie inside an axis-aligned box (x0, y0, x1, y1) at a time."""
        x0, y0, x1, y1 = box_m
        out = []
        for obj in self.objects:
            x_m, y_m, _, _ = obj.pose_at(time_s)
            reach = obj.kind.length_m
            if x0 - reach <= x_m <= x1 + reach and y0 - reach <= y_m <= y1 + reach:
                out.append(obj)
        return out

    def with_objects(self, objects: tuple[WorldObject, ...]) -> World:
        return World(self.site, self.land_m, self.extent_m, objects, self.clutter_m)


def land_of(site: Site, extent: shapely.Polygon) -> BaseGeometry:
    """The ground of a site: behind its coastline, or its named facilities and launch pads."""
    coast_zone = site.coastline
    if coast_zone is not None:
        coast = site.local(coast_zone)
        side = water_side(site, coast, 500.0)
        depth = max(extent.bounds[2] - extent.bounds[0], extent.bounds[3] - extent.bounds[1])
        # Extend the line's ends so the land strip reaches the edge of the world.
        (x0, y0), (x1, y1) = coast.coords[0][:2], coast.coords[1][:2]
        (x8, y8), (x9, y9) = coast.coords[-2][:2], coast.coords[-1][:2]
        head = _extend((x1, y1), (x0, y0), depth)
        tail = _extend((x8, y8), (x9, y9), depth)
        line = shapely.LineString([head, *[c[:2] for c in coast.coords], tail])
        land = line.buffer(-side * depth, single_sided=True)
        return land.intersection(extent)
    parts = [site.local(z).buffer(15.0) for z in site.zones if z.role is Role.NO_FLY]
    parts += [site.local(z) for z in site.watch if _LAND_WORDS.search(z.name)]
    parts += [p.buffer(_PAD_RADIUS_M) for p in site.launch_points_m()]
    return shapely.union_all(parts).intersection(extent) if parts else shapely.Polygon()


def _extend(a: tuple[float, float], b: tuple[float, float], by_m: float) -> tuple[float, float]:
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = math.hypot(dx, dy) or 1.0
    return b[0] + dx / n * by_m, b[1] + dy / n * by_m


def _chord_through(
    rng: np.random.Generator, zone: BaseGeometry, allowed: BaseGeometry, beyond_m: float, tries: int = 40
) -> shapely.LineString | None:
    """A straight path through a random point of the zone, reaching beyond it, inside `allowed`."""
    if zone.is_empty or allowed.is_empty:
        return None
    x0, y0, x1, y1 = zone.bounds
    span = math.hypot(x1 - x0, y1 - y0)
    for _ in range(tries):
        centre = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if not zone.contains(centre):
            continue
        angle = rng.uniform(0, math.pi)
        half = span / 2 + beyond_m
        dx, dy = math.cos(angle) * half, math.sin(angle) * half
        line = shapely.LineString([(centre.x - dx, centre.y - dy), (centre.x + dx, centre.y + dy)])
        piece = line.intersection(allowed)
        for part in getattr(piece, "geoms", [piece]):
            if part.geom_type == "LineString" and part.length > 60.0 and part.distance(centre) < 1.0:
                return part
    return None


def _containers(rng: np.random.Generator, land: BaseGeometry) -> tuple[np.ndarray, ...]:
    """Stacks of containers on the larger pieces of land: static clutter a detector must ignore."""
    blocks: list[np.ndarray] = []
    for piece in getattr(land, "geoms", [land]):
        inner = piece.buffer(-40.0)
        if inner.is_empty or inner.area < 40_000:
            continue
        x0, y0, x1, y1 = inner.bounds
        for _ in range(int(inner.area // 25_000)):
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if not inner.contains(shapely.Point(x, y)):
                continue
            w, h = 2.5 * int(rng.integers(3, 7)), 12.2 * int(rng.integers(2, 5))
            blocks.append(
                place(np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]), x, y, 0)
            )
    return tuple(blocks)

"""Cyclic patrols: closed laps that drones fly again and again.

- perimeter: the operating area's edge inset by a standoff, detouring around keep-outs;
- coast: the shoreline offset to the water side, out and back;
- risk: a tour of the watch zones in which a zone of risk r comes up r times per lap;
- loop: through points the operator gives.

Every lap is a closed polyline in metres whose legs all stay in the safe space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import shapely
from shapely.geometry.base import BaseGeometry

from missions.errors import PlanningError
from missions.planners.paths import dedupe
from missions.planners.routing import Point2, Router, path_length
from missions.site import DEFAULT_WATCH_RISK, Site, Zone, water_side


@dataclass(frozen=True)
class Lap:
    points: tuple[Point2, ...]  # closed: first == last
    visits: tuple[str, ...] = ()  # for the risk pattern: the zone visited at each stop, in order
    visit_starts_m: tuple[float, ...] = ()  # arc length along the lap where each visit begins


def _largest(geometry: BaseGeometry) -> shapely.Polygon | None:
    parts = [g for g in getattr(geometry, "geoms", [geometry]) if g.geom_type == "Polygon" and not g.is_empty]
    return max(parts, key=lambda g: g.area) if parts else None


def _close(router: Router, points: Sequence[Point2]) -> tuple[Point2, ...]:
    """Join the points in order and back to the first, every leg routed."""
    pts = dedupe(points)
    if len(pts) < 2:
        raise PlanningError("a patrol lap needs at least two distinct points")
    return tuple(dedupe(router.connect([*pts, pts[0]])))


def perimeter_lap(site: Site, router: Router, standoff_m: float) -> Lap:
    """The keep-in boundary inset by the standoff; keep-outs on it are flown around."""
    keep_in = site.keep_in_m
    inset = _largest(keep_in.buffer(-standoff_m, join_style="mitre", mitre_limit=3.0))
    if inset is None:
        raise PlanningError(
            f"{site.source}: a {standoff_m:g} m standoff leaves nothing of the operating area; use a smaller standoff"
        )
    ring = shapely.LineString(inset.exterior.coords)
    safe = router.free_space
    # Pieces of the ring in the safe space, in ring order; the router bridges the gaps.
    inside = ring.intersection(safe)
    pieces = [g for g in getattr(inside, "geoms", [inside]) if g.geom_type == "LineString" and g.length > 0]
    if not pieces:
        raise PlanningError(f"{site.source}: the perimeter at {standoff_m:g} m standoff lies entirely in no-fly zones")
    pieces.sort(key=lambda g: ring.project(shapely.Point(g.coords[0])))
    points: list[Point2] = []
    for piece in pieces:
        points += [tuple(c) for c in piece.coords]
    return Lap(_close(router, points))


def coast_lap(site: Site, router: Router, offset_m: float) -> Lap:
    """Along the coastline at the offset on the water side, then back the same way."""
    if site.coastline is None:
        raise PlanningError(f"{site.source}: the site has no coastline; use the operating area's perimeter")
    coast = site.local(site.coastline)
    side = water_side(site, coast, max(4 * offset_m, 500.0))
    line = coast.offset_curve(side * offset_m, join_style="round")
    lines = [g for g in getattr(line, "geoms", [line]) if g.length > 0]
    inside = reduce(
        lambda acc, g: [*acc, *getattr(g, "geoms", [g])], [g.intersection(router.free_space) for g in lines], []
    )
    pieces = [g for g in inside if g.geom_type == "LineString" and g.length > 0]
    if not pieces:
        raise PlanningError(
            f"{site.source}: the coastline offset {offset_m:g} m to the water side lies outside the operating area"
        )
    reference = lines[0]
    pieces.sort(key=lambda g: reference.project(shapely.Point(g.coords[0])))
    out: list[Point2] = []
    for piece in pieces:
        out += [tuple(c) for c in piece.coords]
    out = dedupe(out)
    return Lap(_close(router, [*out, *out[-2::-1]]))


def weighted_sequence(risks: dict[str, int]) -> list[str]:
    """Zone names in visit order, zone z appearing risk[z] / gcd times per lap, spread evenly.

    Smooth weighted round-robin: each step every zone gains its weight, the richest is
    visited and pays the total. It never visits a zone twice in a row unless it must.
    """
    g = reduce(math.gcd, risks.values())
    weights = {z: r // g for z, r in risks.items()}
    total = sum(weights.values())
    credit = dict.fromkeys(weights, 0)
    order: list[str] = []
    for _ in range(total):
        for z, w in weights.items():
            credit[z] += w
        z = max(credit, key=lambda k: (credit[k], -list(weights).index(k)))
        credit[z] -= total
        order.append(z)
    return order


def _visit(site: Site, router: Router, zone: Zone, footprint_m: float, arrive_from: Point2) -> list[Point2]:
    """A pass that sees the zone: its outline inset by half a footprint, or its centre when small."""
    shape = site.local(zone).intersection(router.free_space)
    shape = _largest(shape) if not shape.is_empty else None
    if shape is None:
        raise PlanningError(f"{site.source}: watch zone {zone.name!r} lies outside the safe operating area")
    ring = _largest(shape.buffer(-footprint_m / 2))
    if ring is None or ring.exterior.length < footprint_m:
        c = shape.representative_point()
        return [(c.x, c.y)]
    coords = [tuple(c) for c in ring.exterior.coords]
    start = min(range(len(coords) - 1), key=lambda i: math.dist(coords[i], arrive_from))
    return [*coords[start:-1], *coords[:start], coords[start]]


def risk_lap(site: Site, router: Router, footprint_m: float, start: Point2) -> Lap:
    zones = {z.name: z for z in site.watch}
    if not zones:
        raise PlanningError(f"{site.source}: the risk pattern needs watch zones with a risk; the site has none")
    order = weighted_sequence({name: int(z.risk or DEFAULT_WATCH_RISK) for name, z in zones.items()})
    points: list[Point2] = []
    starts: list[float] = []
    here = start
    for name in order:
        visit = _visit(site, router, zones[name], footprint_m, here)
        points = dedupe([*points, *router.path(points[-1], visit[0])[1:]]) if points else [visit[0]]
        starts.append(path_length(points))
        points = dedupe([*points, *visit[1:]])
        here = visit[-1]
    return Lap(_close(router, points), tuple(order), tuple(starts))


def loop_lap(site: Site, router: Router, route: Sequence[Point2], labels: Sequence[str]) -> Lap:
    """Through the given points in order and back to the first; each point must be safe."""
    if len(route) < 2:
        raise PlanningError(f"{site.source}: the loop pattern needs a route of at least 2 points")
    for p, label in zip(route, labels, strict=True):
        if not router.contains(p):
            raise PlanningError(f"{site.source}: {label} is outside the operating area or inside a no-fly zone")
    return Lap(_close(router, route))

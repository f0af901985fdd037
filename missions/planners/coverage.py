"""Area coverage: lanes over a region, spacing apart, flown as one safe path.

:func:`coverage_path` splits the region into lane-monotone cells (boustrophedon cells,
see :mod:`missions.planners.decomposition`), sweeps each cell at its own angle, orders the
cells and their entry corners to shorten the transits, and routes every leg that is not a
straight safe line with the :class:`Router`. :func:`lawnmower_path` is the plain
fixed-angle survey a naive tool flies, kept as the benchmark baseline.

Everything is in the site's metric frame; angles are lane bearings clockwise from north.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.ops
from shapely.geometry.base import BaseGeometry

from missions.errors import PlanningError
from missions.planners.decomposition import (
    CellMerge,
    Lane,
    Point2,
    boustrophedon_cells,
    edge_bearings,
    min_width_bearing,
    normalise_bearing,
    polygons,
    sweep_lanes,
    unique_bearings,
)
from missions.planners.paths import rotate_closed
from missions.planners.routing import Router, path_length

Progress = Callable[[float], None]

# Same slack as the router: a leg grazing the free-space boundary still counts as inside.
_SLACK_M = 1e-3
# 2-opt re-solves the entry corners of every cell per move (cubic in the cell count);
# past this many cells the greedy order is kept.
_MAX_CELLS_FOR_2OPT = 20
# What a turn between lanes costs when choosing a cell's angle, in metres of lane: a
# multirotor slows down for each, and an angle that fits slightly shorter lanes at the
# price of many more turns is the slower patrol.
_TURN_COST_SPACINGS = 1.0
# Detours into unseen corners stop once at most this share of the area is left unseen.
_UNSEEN_SHARE = 0.01


@dataclass(frozen=True)
class Coverage:
    """A coverage path from launch to landing, in metres.

    ``lanes_m`` is the length flown on lanes (the rest is turns and transits),
    ``sweep_angles_deg`` the lane bearing of each cell in the order flown, and
    ``unreached_m2`` the part of the area in pieces of free space the launch point cannot
    reach without crossing a keep-out (left uncovered rather than flown over).
    """

    path: tuple[Point2, ...]
    length_m: float
    lanes_m: float
    cells: int
    sweep_angles_deg: tuple[float, ...]
    unreached_m2: float = 0.0


@dataclass(frozen=True)
class _Sweep:
    """One cell swept at one bearing: its lanes in order across the cell."""

    bearing_deg: float
    lanes: tuple[Lane, ...]

    def waypoints(self, reverse: bool, flip: bool) -> list[Point2]:
        """Lane ends in flying order: lanes alternate direction, boustrophedon style."""
        lanes = self.lanes[::-1] if reverse else self.lanes
        out: list[Point2] = []
        for k, lane in enumerate(lanes):
            forward = (k % 2 == 0) != flip
            pieces = lane if forward else tuple((b, a) for a, b in reversed(lane))
            for a, b in pieces:
                out += [a, b]
        return out

    @property
    def lanes_m(self) -> float:
        return sum(math.dist(a, b) for lane in self.lanes for a, b in lane)


@dataclass(frozen=True)
class _Variant:
    sweep: _Sweep
    points: tuple[Point2, ...]
    internal_m: float

    @property
    def entry(self) -> Point2:
        return self.points[0]

    @property
    def exit(self) -> Point2:
        return self.points[-1]


def _variants(sweep: _Sweep) -> list[_Variant]:
    out = []
    for reverse, flip in itertools.product((False, True), repeat=2):
        points = tuple(sweep.waypoints(reverse, flip))
        out.append(_Variant(sweep, points, path_length(points)))
    return out


@dataclass(frozen=True)
class _Problem:
    """The inputs every plan needs, reduced to what the launch point can reach."""

    region: BaseGeometry  # the part of the area to cover
    lane_region: BaseGeometry  # where lanes may lie: half a spacing inside the area, inside the free space
    lane_inset_m: float  # how far the outermost lanes keep from the lane region's edge
    spacing_m: float
    start: Point2
    end: Point2
    router: Router
    inside: BaseGeometry  # the router's free space with the slack, prepared
    unreached_m2: float
    safe: BaseGeometry  # the free space the launch point reaches


def _problem(
    area: BaseGeometry,
    safe: BaseGeometry,
    spacing_m: float,
    start: Point2,
    end: Point2 | None,
    router: Router | None,
    contour: bool = False,
) -> _Problem:
    if spacing_m <= 0.0:
        raise PlanningError(f"lane spacing must be positive, got {spacing_m} m")
    start = (float(start[0]), float(start[1]))
    end = start if end is None else (float(end[0]), float(end[1]))
    launch = shapely.Point(start)
    pieces = polygons(safe)
    reach = [p for p in pieces if p.distance(launch) <= _SLACK_M]
    if not reach:
        raise PlanningError(f"launch point ({start[0]:.0f} m E, {start[1]:.0f} m N) is outside the free space")
    reachable = shapely.union_all(reach)
    if reachable.distance(shapely.Point(end)) > _SLACK_M:
        raise PlanningError(
            f"landing point ({end[0]:.0f} m E, {end[1]:.0f} m N) cannot be reached from the launch point "
            "without crossing a keep-out"
        )
    if router is None:
        router = Router(reachable)
    lane_region = area.buffer(-spacing_m / 2.0, quad_segs=4).intersection(reachable)
    if contour:
        # A contour pass along the free-space edge sees half a spacing either side of it;
        # lane ends stop where their half-spacing strip meets that band.
        lane_region = lane_region.intersection(reachable.buffer(-spacing_m / 2.0, join_style="mitre"))
    # Only area pieces the drone can reach are planned; the others are cut off by keep-outs.
    served = [p for p in polygons(area) if p.intersects(reachable if contour else lane_region)]
    region = shapely.union_all(served) if served else shapely.Polygon()
    inside = router.free_space.buffer(_SLACK_M)
    shapely.prepare(inside)
    inset = spacing_m / 2.0 if contour else 0.0
    return _Problem(
        region, lane_region, inset, spacing_m, start, end, router, inside, float(area.area - region.area), reachable
    )


def coverage_path(
    area: BaseGeometry,
    safe: BaseGeometry,
    spacing_m: float,
    start: Point2,
    end: Point2 | None = None,
    router: Router | None = None,
    progress: Progress | None = None,
) -> Coverage:
    """A short path from start to end whose half-spacing strip covers the area.

    ``area`` is what must be seen (keep-in minus keep-outs), ``safe`` where the drone may
    fly (a subset of it: keep-in and keep-outs with a margin). Every leg lies in ``safe``.

    Several layouts are planned: decomposed cells with lanes alone, the same inside a
    contour pass along every edge of the free space, and single sweeps over the whole area
    at a few angles. On wide areas lanes alone see nearly everything; on narrow ones, or
    with a margin near half a spacing, only the contour sees the edge bands; on a long
    strip one sweep may beat any decomposition. The shortest layout that sees all but
    ``_UNSEEN_SHARE`` of the area wins.
    """
    report = progress or (lambda _fraction: None)
    plain = _problem(area, safe, spacing_m, start, end, router)
    candidates = [_plan(plain, contour=False, report=lambda f: report(0.5 * f))]
    # A single sweep over the whole area is a layout too, and on a long strip it can beat
    # any decomposition; it costs a few milliseconds per angle.
    if not plain.region.is_empty:
        bearings = unique_bearings([0.0, 90.0, min_width_bearing(plain.region), *edge_bearings(plain.region, 3)])
        for bearing in bearings:
            lanes = sweep_lanes(plain.region, plain.lane_region, bearing, spacing_m)
            if lanes:
                variants = _variants(_Sweep(bearing, tuple(lanes)))
                chosen = min(variants, key=lambda v: math.dist(plain.start, v.entry) + math.dist(v.exit, plain.end))
                coverage = _finish(plain, [chosen], touch_up=True)
                candidates.append((coverage, _seen_share(plain, coverage.path)))
    enough = 1.0 - _UNSEEN_SHARE - 1e-9
    if not any(seen >= enough for _, seen in candidates):
        # Lanes alone leave edge bands unseen (a narrow area, or a margin near half a spacing).
        with_contour = _problem(area, safe, spacing_m, start, end, plain.router, contour=True)
        candidates.append(_plan(with_contour, contour=True, report=lambda f: report(0.5 + 0.5 * f)))
    report(1.0)
    good = [(c, seen) for c, seen in candidates if seen >= enough]
    if good:
        return min(good, key=lambda cs: cs[0].length_m)[0]
    return max(candidates, key=lambda cs: cs[1])[0]


def _plan(problem: _Problem, contour: bool, report: Progress) -> tuple[Coverage, float]:
    """The best layout for one way of placing lanes, and the share of the area it sees."""
    if problem.region.is_empty:
        return _finish(problem, [], contour=contour), 1.0
    bearings = unique_bearings([*edge_bearings(problem.region, 3), min_width_bearing(problem.region), 0.0, 90.0])
    trials = [(b, merge) for b in bearings for merge in CellMerge]
    best: tuple[float, list[_Sweep]] | None = None
    for n, (bearing, merge) in enumerate(trials):
        sweeps = [
            s
            for cell in boustrophedon_cells(problem.region, bearing, merge)
            if (s := _best_sweep(cell, bearing, problem))
        ]
        if sweeps:
            cost, _ = _order(sweeps, problem.start, problem.end, math.dist)
            if best is None or cost < best[0]:
                best = (cost, sweeps)
        report(0.7 * (n + 1) / len(trials))
    tour: list[_Variant] = []
    if best is not None:
        _, tour = _order(best[1], problem.start, problem.end, _Transit(problem).distance)
    report(0.85)
    coverage = _finish(problem, tour, touch_up=True, contour=contour)
    return coverage, _seen_share(problem, coverage.path)


def _seen_share(problem: _Problem, path: Sequence[Point2]) -> float:
    if problem.region.area <= 0:
        return 1.0
    seen = shapely.LineString(path).buffer(problem.spacing_m / 2.0, quad_segs=4) if len(path) > 1 else None
    return 0.0 if seen is None else problem.region.intersection(seen).area / problem.region.area


def lawnmower_path(
    area: BaseGeometry,
    safe: BaseGeometry,
    spacing_m: float,
    start: Point2,
    end: Point2 | None = None,
    angle_deg: float = 0.0,
    router: Router | None = None,
) -> Coverage:
    """The fixed-angle survey: one bearing, lanes in order across the whole area.

    Lanes alternate direction and a lane broken by a keep-out is flown piece by piece,
    each gap routed around it, as a plain survey tool does. Of the four corners it may
    start from, the one that makes the launch and landing transits shortest is used.
    """
    problem = _problem(area, safe, spacing_m, start, end, router)
    if problem.region.is_empty:
        return _finish(problem, [])
    bearing = normalise_bearing(angle_deg)
    lanes = sweep_lanes(problem.region, problem.lane_region, bearing, spacing_m)
    if not lanes:
        return _finish(problem, [])
    variants = _variants(_Sweep(bearing, tuple(lanes)))
    chosen = min(variants, key=lambda v: math.dist(problem.start, v.entry) + math.dist(v.exit, problem.end))
    return _finish(problem, [chosen])


def _best_sweep(cell: shapely.Polygon, cut_bearing_deg: float, problem: _Problem) -> _Sweep | None:
    """The cell's sweep with the shortest in-cell path among its promising bearings.

    The cut bearing always works (the cell is monotone for it). Another bearing is taken
    only if every lane crosses the lane region once, so the sweep needs no detours.
    """
    lane_region = cell.intersection(problem.lane_region)
    if lane_region.is_empty:
        return None
    candidates = unique_bearings([cut_bearing_deg, min_width_bearing(cell), *edge_bearings(cell, 3)])
    best: tuple[float, _Sweep] | None = None
    for bearing in candidates:
        lanes = sweep_lanes(cell, lane_region, bearing, problem.spacing_m, problem.lane_inset_m)
        if not lanes or (bearing != candidates[0] and any(len(lane) > 1 for lane in lanes)):
            continue
        sweep = _Sweep(bearing, tuple(lanes))
        turns_m = _TURN_COST_SPACINGS * problem.spacing_m * (len(lanes) - 1)
        cost = min(v.internal_m for v in _variants(sweep)[:2]) + turns_m
        if best is None or cost < best[0]:
            best = (cost, sweep)
    return best[1] if best else None


class _Transit:
    """Safe transit distances between points, straight where clear, cached."""

    def __init__(self, problem: _Problem) -> None:
        self._problem = problem
        self._cache: dict[tuple[Point2, Point2], float] = {}

    def distance(self, a: Point2, b: Point2) -> float:
        key = (a, b) if a <= b else (b, a)
        if key not in self._cache:
            if a == b or shapely.covers(self._problem.inside, shapely.LineString([a, b])):
                self._cache[key] = math.dist(a, b)
            else:
                self._cache[key] = self._problem.router.distance(a, b)
        return self._cache[key]


def _order(
    sweeps: Sequence[_Sweep], start: Point2, end: Point2, distance: Callable[[Point2, Point2], float]
) -> tuple[float, list[_Variant]]:
    """Cell order and entry corners: greedy nearest cell, then 2-opt on the order.

    For a fixed order the best entry corners follow exactly from a small dynamic
    programme (four corners per cell), so 2-opt only searches over orders.
    """
    variants = [_variants(s) for s in sweeps]
    remaining = set(range(len(sweeps)))
    here = start
    order: list[int] = []
    while remaining:
        i, v = min(
            ((i, v) for i in remaining for v in variants[i]),
            key=lambda iv: distance(here, iv[1].entry) + iv[1].internal_m,
        )
        order.append(i)
        remaining.remove(i)
        here = v.exit
    cost, tour = _tour(order, variants, start, end, distance)
    if len(order) > _MAX_CELLS_FOR_2OPT:
        return cost, tour
    improved = True
    while improved:
        improved = False
        for i in range(len(order) - 1):
            for j in range(i + 1, len(order)):
                candidate = order[:i] + order[i : j + 1][::-1] + order[j + 1 :]
                c, t = _tour(candidate, variants, start, end, distance)
                if c < cost - 1e-6:
                    cost, tour, order, improved = c, t, candidate, True
    return cost, tour


def _tour(
    order: Sequence[int],
    variants: Sequence[Sequence[_Variant]],
    start: Point2,
    end: Point2,
    distance: Callable[[Point2, Point2], float],
) -> tuple[float, list[_Variant]]:
    costs = [distance(start, v.entry) + v.internal_m for v in variants[order[0]]]
    back: list[list[int]] = []
    for prev, cur in itertools.pairwise(order):
        step = []
        new_costs = []
        for v in variants[cur]:
            k = min(range(len(costs)), key=lambda k: costs[k] + distance(variants[prev][k].exit, v.entry))
            step.append(k)
            new_costs.append(costs[k] + distance(variants[prev][k].exit, v.entry) + v.internal_m)
        back.append(step)
        costs = new_costs
    last = min(range(len(costs)), key=lambda k: costs[k] + distance(variants[order[-1]][k].exit, end))
    total = costs[last] + distance(variants[order[-1]][last].exit, end)
    chosen = [last]
    for step in reversed(back):
        chosen.append(step[chosen[-1]])
    chosen.reverse()
    return total, [variants[i][k] for i, k in zip(order, chosen, strict=True)]


def _with_contours(problem: _Problem, waypoints: list[Point2]) -> list[Point2]:
    """Splice a loop around every edge of the free space into the path where it passes nearest.

    Lanes meet an edge only at every other lane end; between them a lens of the edge band
    stays unseen. Flying the edge itself, at the safety margin, sees the whole band.
    """
    rings = [ring for piece in polygons(problem.safe) for ring in (piece.exterior, *piece.interiors)]
    for ring in sorted(rings, key=lambda r: -r.length):
        line = shapely.LineString(ring.coords)
        xy = shapely.points(np.asarray(waypoints, dtype=float))
        k = int(np.argmin(shapely.distance(xy, line)))
        loop = rotate_closed([tuple(c) for c in line.coords], line.project(shapely.Point(waypoints[k])))
        waypoints = [*waypoints[: k + 1], *loop, *waypoints[k + 1 :]]
    return waypoints


def _finish(problem: _Problem, tour: Sequence[_Variant], touch_up: bool = False, contour: bool = False) -> Coverage:
    """Join start, every cell's lane ends and end into one path, routing unsafe legs.

    With ``touch_up``, corners the lanes cannot reach (a spike narrower than a spacing
    has no room for a lane half a spacing from its edges) get a detour into them.
    """
    waypoints: list[Point2] = [problem.start]
    for variant in tour:
        waypoints += variant.points
    waypoints.append(problem.end)
    if contour:
        waypoints = _with_contours(problem, waypoints)
    xy = np.asarray(waypoints, dtype=float)
    legs = shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1))
    clear = shapely.covers(problem.inside, legs) | np.all(xy[:-1] == xy[1:], axis=1)
    path: list[Point2] = [waypoints[0]]
    for k, (a, b) in enumerate(itertools.pairwise(waypoints)):
        leg = [a, b] if clear[k] else problem.router.path(a, b)
        for p in leg[1:]:
            if p != path[-1]:
                path.append(p)
    if touch_up:
        path = _touch_up(problem, path)
    if len(path) == 1:
        path.append(path[0])
    return Coverage(
        path=tuple(path),
        length_m=path_length(path),
        lanes_m=sum(v.sweep.lanes_m for v in tour),
        cells=len(tour),
        sweep_angles_deg=tuple(v.sweep.bearing_deg for v in tour),
        unreached_m2=problem.unreached_m2,
    )


def _spine(piece: shapely.Polygon, problem: _Problem) -> list[Point2]:
    """Where to fly to see an unseen piece: along its long axis where that is safe, else its nearest safe point.

    Unseen pieces are mostly slivers along an edge the lanes meet at a slant; one point
    sees a spacing-wide disc of them, their long axis sees them whole.
    """
    rect = piece.oriented_envelope
    if rect.geom_type == "Polygon":
        c = np.asarray(rect.exterior.coords)[:4]
        sides = np.hypot(*np.diff(np.vstack([c, c[:1]]), axis=0).T)
        i = int(np.argmin(sides[:2]))
        a = (c[i] + c[i + 1]) / 2.0
        b = (c[(i + 2) % 4] + c[(i + 3) % 4]) / 2.0
        axis = shapely.LineString([a, b]).intersection(problem.safe)
        parts = [g for g in getattr(axis, "geoms", [axis]) if g.geom_type == "LineString" and g.length > 0]
        if parts and shapely.LineString([a, b]).length > problem.spacing_m:
            longest = max(parts, key=lambda g: g.length)
            return [tuple(map(float, longest.coords[0])), tuple(map(float, longest.coords[-1]))]
    target = shapely.ops.nearest_points(problem.safe, piece.point_on_surface())[0]
    return [(float(target.x), float(target.y))]


def _touch_up(problem: _Problem, path: list[Point2], rounds: int = 3) -> list[Point2]:
    """Detour into the largest pieces of the area the path leaves unseen, until it sees enough.

    The detour flies out from the nearest point of the path, along the piece, and back, so
    no leg of the path is lost; every leg is routed. Detours stop once all but
    ``_UNSEEN_SHARE`` of the area is seen: chasing the last slivers costs far more path
    than they are worth.
    """
    half = problem.spacing_m / 2.0
    smallest_m2 = 0.25 * problem.spacing_m**2
    allowed_m2 = _UNSEEN_SHARE * problem.region.area
    for _ in range(rounds):
        seen = (
            shapely.LineString(path).buffer(half, quad_segs=4) if len(path) > 1 else shapely.Point(path[0]).buffer(half)
        )
        pieces = polygons(problem.region.difference(seen))
        excess = sum(g.area for g in pieces) - allowed_m2
        unseen = [g for g in sorted(pieces, key=lambda g: -g.area) if g.area >= smallest_m2]
        if excess <= 0 or not unseen:
            break
        chosen = []
        for piece in unseen:
            if excess <= 0:
                break
            chosen.append(piece)
            excess -= piece.area
        for piece in chosen:
            targets = _spine(piece, problem)
            t = np.array(targets[0])
            xy = np.asarray(path, dtype=float)
            a, d = xy[:-1], np.diff(xy, axis=0)
            length2 = np.maximum((d**2).sum(axis=1), 1e-12)
            u = np.clip(((t - a) * d).sum(axis=1) / length2, 0.0, 1.0)
            foot = a + u[:, None] * d
            k = int(np.argmin(np.hypot(*(foot - t).T)))
            q = (float(foot[k, 0]), float(foot[k, 1]))
            # The detour leaves the path at q, on leg k, and comes back to q.
            detour = problem.router.connect([q, *targets, q])
            path = path[: k + 1] + detour + path[k + 1 :]
    return path

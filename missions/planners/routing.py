"""Shortest safe paths: inside the keep-in, around every keep-out.

A shortest path among polygonal obstacles bends only at reflex vertices of the free
space, so the router builds a visibility graph over those vertices once and answers
each query with Dijkstra after linking the two end points to the nodes they can see.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from missions.errors import PlanningError

Point2 = tuple[float, float]

# Segments touching the free-space boundary (and end points sitting on it) must count
# as inside; a millimetre of slack absorbs floating-point noise from the projections.
_SLACK_M = 1e-3


def _polygons(space: BaseGeometry) -> list[shapely.Polygon]:
    if isinstance(space, shapely.Polygon):
        return [space]
    return [g for g in getattr(space, "geoms", []) if isinstance(g, shapely.Polygon)]


def _reflex_vertices(ring: shapely.LinearRing, is_hole: bool) -> list[Point2]:
    """Vertices where the free space turns concave (the only places a shortest path bends)."""
    coords = np.asarray(ring.coords)[:-1]
    if len(coords) < 3:
        return []
    prev = np.roll(coords, 1, axis=0)
    nxt = np.roll(coords, -1, axis=0)
    cross = (coords[:, 0] - prev[:, 0]) * (nxt[:, 1] - coords[:, 1]) - (coords[:, 1] - prev[:, 1]) * (
        nxt[:, 0] - coords[:, 0]
    )
    ccw = ring.is_ccw
    # For a counter-clockwise exterior, a clockwise turn (cross < 0) is reflex; holes are the reverse.
    reflex = cross < 0 if ccw else cross > 0
    if is_hole:
        reflex = ~reflex
    return [tuple(map(float, c)) for c in coords[reflex]]


class Router:
    """Answers shortest safe paths inside one free-space geometry (metres)."""

    def __init__(self, free_space: BaseGeometry) -> None:
        if free_space.is_empty:
            raise PlanningError("no free space left to fly in: the keep-outs and margins cover the whole keep-in")
        self.free_space = free_space
        self._inside = free_space.buffer(_SLACK_M)
        shapely.prepare(self._inside)
        nodes: list[Point2] = []
        for polygon in _polygons(free_space):
            nodes += _reflex_vertices(polygon.exterior, is_hole=False)
            for hole in polygon.interiors:
                nodes += _reflex_vertices(hole, is_hole=True)
        self.nodes: list[Point2] = nodes
        self._xy = np.asarray(nodes, dtype=float).reshape(-1, 2)
        self._edges: list[list[tuple[int, float]]] = [[] for _ in nodes]
        n = len(nodes)
        if n > 1:
            i_idx, j_idx = np.triu_indices(n, k=1)
            segments = shapely.linestrings(np.stack([self._xy[i_idx], self._xy[j_idx]], axis=1))
            visible = shapely.covers(self._inside, segments)
            lengths = np.hypot(*(self._xy[i_idx] - self._xy[j_idx]).T)
            for i, j, length in zip(i_idx[visible], j_idx[visible], lengths[visible], strict=True):
                self._edges[i].append((int(j), float(length)))
                self._edges[j].append((int(i), float(length)))

    def contains(self, point: Point2) -> bool:
        return bool(shapely.covers(self._inside, shapely.Point(point)))

    def is_clear(self, a: Point2, b: Point2) -> bool:
        """Whether the straight leg a-b stays in the free space."""
        if a == b:
            return self.contains(a)
        return bool(shapely.covers(self._inside, shapely.LineString([a, b])))

    def _visible_nodes(self, p: Point2) -> list[tuple[int, float]]:
        if not len(self.nodes):
            return []
        starts = np.broadcast_to(np.asarray(p, dtype=float), self._xy.shape)
        segments = shapely.linestrings(np.stack([starts, self._xy], axis=1))
        degenerate = np.all(np.isclose(starts, self._xy), axis=1)
        visible = shapely.covers(self._inside, segments) | degenerate
        lengths = np.hypot(*(self._xy - starts).T)
        return [(int(i), float(lengths[i])) for i in np.flatnonzero(visible)]

    def path(self, a: Point2, b: Point2) -> list[Point2]:
        """The shortest leg sequence from a to b that stays in the free space."""
        a, b = (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))
        if self.is_clear(a, b):
            return [a, b]
        for label, p in (("start", a), ("end", b)):
            if not self.contains(p):
                raise PlanningError(f"route {label} point ({p[0]:.0f} m E, {p[1]:.0f} m N) is outside the free space")
        n = len(self.nodes)
        target = n  # index of b in the search
        dist = {-1: 0.0}
        prev: dict[int, int] = {}
        heap: list[tuple[float, int]] = [(0.0, -1)]
        to_target = dict(self._visible_nodes(b))
        done: set[int] = set()
        while heap:
            d, u = heapq.heappop(heap)
            if u in done:
                continue
            done.add(u)
            if u == target:
                break
            neighbours: Iterable[tuple[int, float]] = self._visible_nodes(a) if u == -1 else self._edges[u]
            if u in to_target:
                neighbours = [*neighbours, (target, to_target[u])]
            for v, w in neighbours:
                nd = d + w
                if nd < dist.get(v, math.inf) - 1e-9:
                    dist[v] = nd
                    prev[v] = u
                    heapq.heappush(heap, (nd, v))
        if target not in done:
            raise PlanningError(
                f"no safe route from ({a[0]:.0f} m E, {a[1]:.0f} m N) to ({b[0]:.0f} m E, {b[1]:.0f} m N): "
                "keep-outs cut the operating area in two"
            )
        chain = [b]
        u = prev[target]
        while u != -1:
            chain.append(self.nodes[u])
            u = prev[u]
        chain.append(a)
        return chain[::-1]

    def distance(self, a: Point2, b: Point2) -> float:
        return path_length(self.path(a, b))

    def connect(self, points: Sequence[Point2]) -> list[Point2]:
        """A polyline through the points in order, every leg routed around keep-outs."""
        if not points:
            return []
        out: list[Point2] = [tuple(points[0])]
        for p, q in itertools.pairwise(points):
            out += self.path(p, q)[1:]
        return out


def path_length(points: Sequence[Point2]) -> float:
    if len(points) < 2:
        return 0.0
    xy = np.asarray(points, dtype=float)
    return float(np.hypot(*np.diff(xy, axis=0).T).sum())

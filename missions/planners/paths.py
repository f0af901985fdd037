"""Polylines in metres: lengths, timing, and cutting them at arc lengths."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from missions.planners.camera import FlightModel
from missions.planners.routing import Point2, path_length


def dedupe(points: Sequence[Point2], tolerance_m: float = 1e-6) -> list[Point2]:
    out: list[Point2] = []
    for p in points:
        p = (float(p[0]), float(p[1]))
        if not out or math.dist(out[-1], p) > tolerance_m:
            out.append(p)
    return out


def cumulative(points: Sequence[Point2]) -> np.ndarray:
    """Arc length at each vertex."""
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(xy) < 2:
        return np.zeros(len(xy))
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])


def turn_angles(points: Sequence[Point2]) -> np.ndarray:
    """Heading change at every interior vertex, radians in [0, π]."""
    xy = np.asarray(dedupe(points), dtype=float).reshape(-1, 2)
    if len(xy) < 3:
        return np.zeros(0)
    d = np.diff(xy, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs((np.diff(h) + math.pi) % (2 * math.pi) - math.pi)
    return turn


def flight_time_s(points: Sequence[Point2], model: FlightModel, with_takeoff: bool = False) -> float:
    """Cruise plus corners; with take-off and landing when the path is a whole sortie."""
    cruise = path_length(points) / model.speed_m_s
    corners = float(np.sum([model.corner_s(t) for t in turn_angles(points)]))
    return cruise + corners + (model.takeoff_landing_s if with_takeoff else 0.0)


def point_at(points: Sequence[Point2], distance_m: float, arc: np.ndarray | None = None) -> tuple[Point2, int]:
    """The point at an arc length and the index of the vertex that starts its segment."""
    arc = cumulative(points) if arc is None else arc
    distance_m = min(max(distance_m, 0.0), float(arc[-1]))
    i = int(np.searchsorted(arc, distance_m, side="right") - 1)
    i = min(max(i, 0), len(points) - 2)
    seg = arc[i + 1] - arc[i]
    t = 0.0 if seg <= 0 else (distance_m - arc[i]) / seg
    (x0, y0), (x1, y1) = points[i], points[i + 1]
    return (x0 + t * (x1 - x0), y0 + t * (y1 - y0)), i


def subpath(points: Sequence[Point2], start_m: float, end_m: float, arc: np.ndarray | None = None) -> list[Point2]:
    """The part of a polyline between two arc lengths."""
    arc = cumulative(points) if arc is None else arc
    a, ia = point_at(points, start_m, arc)
    b, ib = point_at(points, end_m, arc)
    inner = [tuple(p) for p in points[ia + 1 : ib + 1]]
    return dedupe([a, *inner, b])


def rotate_closed(loop: Sequence[Point2], start_m: float) -> list[Point2]:
    """A closed loop (first == last) that starts at the given arc length instead."""
    arc = cumulative(loop)
    total = float(arc[-1])
    start_m %= total if total else 1.0
    head = subpath(loop, start_m, total, arc)
    tail = subpath(loop, 0.0, start_m, arc)
    return dedupe([*head, *tail[1:]]) if len(tail) > 1 else dedupe(head)

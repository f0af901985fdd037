"""Boustrophedon cell decomposition and the lanes that sweep one cell.

Angles are lane bearings in degrees clockwise from north, in [0, 180): 0° gives lanes
running north–south, as QGroundControl's survey angle does. Internally a geometry is
rotated into a "work" frame where the lanes run along +x, so one cut line is one lane.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry.base import BaseGeometry

Point2 = tuple[float, float]
Segment = tuple[Point2, Point2]
Lane = tuple[Segment, ...]

# Vertices closer than this across the sweep are one event: a sliver slab would yield
# pieces too thin to carry an adjacency and would break cells apart.
_EVENT_TOLERANCE_M = 1e-3
# Lanes keep this far off the extreme of the lane region, so a lane never runs exactly
# along a boundary edge, where intersections come out as fragments.
_EDGE_NUDGE_M = 1e-4


class CellMerge(enum.Enum):
    """How slab pieces are chained into cells (every choice keeps cells lane-monotone)."""

    CHAINS = "chains"  # any chain through consecutive slabs: fewest cells
    ONE_TO_ONE = "one-to-one"  # classic boustrophedon: cut at every split and merge
    CUT_AT_REFLEX = "cut-at-reflex"  # also cut at reflex corners, so an L gives two arms


def polygons(geometry: BaseGeometry) -> list[shapely.Polygon]:
    if geometry.is_empty:
        return []
    if isinstance(geometry, shapely.Polygon):
        return [geometry]
    return [g for g in shapely.get_parts(geometry) if isinstance(g, shapely.Polygon) and not g.is_empty]


def to_work(geometry: BaseGeometry, bearing_deg: float) -> BaseGeometry:
    return affinity.rotate(geometry, bearing_deg - 90.0, origin=(0.0, 0.0))


def points_from_work(xy: np.ndarray, bearing_deg: float) -> np.ndarray:
    phi = math.radians(90.0 - bearing_deg)
    c, s = math.cos(phi), math.sin(phi)
    return np.column_stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]])


def normalise_bearing(bearing_deg: float) -> float:
    b = bearing_deg % 180.0
    return 0.0 if b > 180.0 - 1e-9 else b


def edge_bearings(geometry: BaseGeometry, count: int) -> list[float]:
    """The bearings of the longest straight runs of a geometry's boundary, longest first.

    Sweeping parallel to a long edge leaves the fewest lane ends along it, so these are
    the angles worth trying; edges within a degree are pooled (a circle's facets are not).
    """
    weights: dict[int, float] = {}
    for polygon in polygons(geometry):
        for ring in (polygon.exterior, *polygon.interiors):
            xy = np.asarray(ring.coords)
            d = np.diff(xy, axis=0)
            lengths = np.hypot(d[:, 0], d[:, 1])
            bearings = np.round(np.degrees(np.arctan2(d[:, 0], d[:, 1])) % 180.0).astype(int) % 180
            for b, length in zip(bearings, lengths, strict=True):
                weights[int(b)] = weights.get(int(b), 0.0) + float(length)
    best = sorted(weights.items(), key=lambda kv: -kv[1])[:count]
    return [float(b) for b, _ in best]


def min_width_bearing(geometry: BaseGeometry) -> float:
    """The bearing of the long side of the minimum-area bounding rectangle."""
    rect = shapely.minimum_rotated_rectangle(geometry)
    if not isinstance(rect, shapely.Polygon):
        return 0.0
    xy = np.asarray(rect.exterior.coords)
    d = np.diff(xy[:3], axis=0)
    longest = d[int(np.argmax(np.hypot(d[:, 0], d[:, 1])))]
    return normalise_bearing(math.degrees(math.atan2(longest[0], longest[1])))


def unique_bearings(bearings: Sequence[float], tolerance_deg: float = 1.0) -> list[float]:
    out: list[float] = []
    for b in (normalise_bearing(b) for b in bearings):
        if all(min(abs(b - o), 180.0 - abs(b - o)) > tolerance_deg for o in out):
            out.append(b)
    return out


def boustrophedon_cells(
    region: BaseGeometry, bearing_deg: float, merge: CellMerge = CellMerge.CHAINS
) -> list[shapely.Polygon]:
    """Cells of the region that every lane at this bearing crosses in one interval.

    The region is cut into slabs at every vertex across the sweep; each slab piece is a
    trapezoid. Pieces of consecutive slabs that share an edge are chained (see
    :class:`CellMerge`); chains prefer the widest shared edge. Cutting at reflex corners
    lets each arm of a bent region take its own sweep angle.
    """
    work = to_work(region, bearing_deg)
    parts = polygons(work)
    if not parts:
        return []
    ys = np.unique(np.concatenate([shapely.get_coordinates(p)[:, 1] for p in parts]))
    keep = np.concatenate([[True], np.diff(ys) > _EVENT_TOLERANCE_M])
    ys = ys[keep]
    if len(ys) < 2:
        return parts
    min_x, _, max_x, _ = work.bounds
    slabs = shapely.box(min_x - 1.0, ys[:-1], max_x + 1.0, ys[1:])
    pieces_by_slab = [polygons(g) for g in shapely.intersection(work, slabs)]
    pieces: list[shapely.Polygon] = []
    slab_of: list[int] = []
    bottom: list[tuple[float, float]] = []
    top: list[tuple[float, float]] = []
    for k, slab_pieces in enumerate(pieces_by_slab):
        for piece in slab_pieces:
            if piece.area <= 0.0:
                continue
            xy = shapely.get_coordinates(piece)
            pieces.append(piece)
            slab_of.append(k)
            bottom.append(_extent_at(xy, ys[k]))
            top.append(_extent_at(xy, ys[k + 1]))
    by_slab: dict[int, list[int]] = {}
    for i, k in enumerate(slab_of):
        by_slab.setdefault(k, []).append(i)
    up: dict[int, list[tuple[float, int]]] = {i: [] for i in range(len(pieces))}
    down: dict[int, list[tuple[float, int]]] = {i: [] for i in range(len(pieces))}
    for k, lower in by_slab.items():
        for i in lower:
            for j in by_slab.get(k + 1, []):
                overlap = min(top[i][1], bottom[j][1]) - max(top[i][0], bottom[j][0])
                if overlap > _EVENT_TOLERANCE_M:
                    up[i].append((overlap, j))
                    down[j].append((overlap, i))
    link_up: dict[int, int] = {}
    linked_down: set[int] = set()
    reflex_ys = _reflex_ys(parts) if merge is CellMerge.CUT_AT_REFLEX else np.empty(0)
    if merge is CellMerge.CHAINS:
        candidates = sorted(((o, i, j) for i in up for o, j in up[i]), reverse=True)
        for _, i, j in candidates:
            if i not in link_up and j not in linked_down:
                link_up[i] = j
                linked_down.add(j)
    else:
        for i, ups in up.items():
            cut = len(reflex_ys) and np.min(np.abs(reflex_ys - ys[slab_of[i] + 1])) <= _EVENT_TOLERANCE_M
            if len(ups) == 1 and len(down[ups[0][1]]) == 1 and not cut:
                link_up[i] = ups[0][1]
                linked_down.add(ups[0][1])
    cells: list[shapely.Polygon] = []
    for i in sorted(set(range(len(pieces))) - linked_down, key=lambda i: slab_of[i]):
        chain = [pieces[i]]
        while i in link_up:
            i = link_up[i]
            chain.append(pieces[i])
        merged = shapely.union_all(chain) if len(chain) > 1 else chain[0]
        cells += polygons(affinity.rotate(merged, 90.0 - bearing_deg, origin=(0.0, 0.0)))
    return cells


def _reflex_ys(parts: list[shapely.Polygon]) -> np.ndarray:
    ys = []
    for polygon in parts:
        for ring in (polygon.exterior, *polygon.interiors):
            xy = np.asarray(ring.coords)[:-1]
            prev, nxt = np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0)
            cross = (xy[:, 0] - prev[:, 0]) * (nxt[:, 1] - xy[:, 1]) - (xy[:, 1] - prev[:, 1]) * (nxt[:, 0] - xy[:, 0])
            # Inside is on the left of a counter-clockwise ring, so a right turn is reflex.
            reflex = cross < 0 if ring.is_ccw else cross > 0
            ys.append(xy[reflex, 1])
    return np.concatenate(ys) if ys else np.empty(0)


def _extent_at(xy: np.ndarray, y: float) -> tuple[float, float]:
    on_line = xy[np.abs(xy[:, 1] - y) <= _EVENT_TOLERANCE_M, 0]
    if not len(on_line):
        return (math.inf, -math.inf)
    return (float(on_line.min()), float(on_line.max()))


def _extreme_lane(cell_w: BaseGeometry, region_w: BaseGeometry, y: float, inward: float, spacing_m: float) -> float:
    """Where to put the outermost lane on one side: at ``y``, or a little inward.

    An edge nearly parallel to the lanes leaves the outermost lane a stub at the edge's
    far end and the strip along the rest of the edge unseen; a lane slightly inward spans
    the whole edge. Among a few offsets, take the one that leaves the least of the cell
    beyond the lane out of its half-spacing reach.
    """
    offsets = y + inward * spacing_m * np.array([0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3])
    min_x, min_y, max_x, max_y = cell_w.bounds
    lines = _lines(offsets, min_x - 1.0, max_x + 1.0)
    lanes = shapely.intersection(lines, region_w)
    beyond = (
        shapely.box(min_x - 1.0, min_y - 1.0, max_x + 1.0, offsets)
        if inward > 0
        else shapely.box(min_x - 1.0, offsets, max_x + 1.0, max_y + 1.0)
    )
    unseen = shapely.area(
        shapely.difference(shapely.intersection(cell_w, beyond), shapely.buffer(lanes, spacing_m / 2.0, quad_segs=4))
    )
    # A lane further in must save a clear amount, not float noise.
    return float(offsets[int(np.argmin(unseen + np.arange(len(offsets)) * 1e-3 * spacing_m))])


def _lines(ys: np.ndarray, min_x: float, max_x: float) -> np.ndarray:
    return shapely.linestrings(
        np.stack(
            [np.column_stack([np.full_like(ys, min_x), ys]), np.column_stack([np.full_like(ys, max_x), ys])], axis=1
        )
    )


def sweep_lanes(
    cell: BaseGeometry, lane_region: BaseGeometry, bearing_deg: float, spacing_m: float, region_inset_m: float = 0.0
) -> list[Lane]:
    """Parallel lanes over one cell, spacing apart, clipped to where lanes may lie.

    The first and last lanes sit half a spacing inside the cell's extent across the
    sweep (so a cell boundary shared with a neighbour is covered from both sides without
    doubling a lane), but never beyond the lane region, so the extreme corner still gets a
    lane. Lanes are evenly spread, so no gap exceeds the spacing. Each lane is its pieces
    in order along the bearing (more than one where the lane region is not monotone).
    """
    if lane_region.is_empty:
        return []
    cell_w = to_work(cell, bearing_deg)
    region_w = to_work(lane_region, bearing_deg)
    _, cell_lo, _, cell_hi = cell_w.bounds
    min_x, region_lo, max_x, region_hi = region_w.bounds
    half = spacing_m / 2.0
    # ``region_inset_m``: how far the outermost lanes keep from the lane region's edge (a
    # contour pass may already see the band along it); lane ends still run to that edge.
    inset = max(region_inset_m, _EDGE_NUDGE_M)
    lo = max(cell_lo + half, region_lo + inset)
    hi = min(cell_hi - half, region_hi - inset)
    if hi < lo:
        ys = np.array([(max(cell_lo, region_lo) + min(cell_hi, region_hi)) / 2.0])
    else:
        lo = _extreme_lane(cell_w, region_w, lo, +1.0, spacing_m)
        hi = max(lo, _extreme_lane(cell_w, region_w, hi, -1.0, spacing_m))
        n = math.ceil((hi - lo) / spacing_m - 1e-9) + 1
        ys = np.linspace(lo, hi, n) if n > 1 else np.array([(lo + hi) / 2.0])
    lines = _lines(ys, min_x - 1.0, max_x + 1.0)
    shapely.prepare(region_w)
    lanes: list[Lane] = []
    for clipped in shapely.intersection(lines, region_w):
        spans = sorted(
            (float(min(c[0, 0], c[-1, 0])), float(max(c[0, 0], c[-1, 0])), float(c[0, 1]))
            for c in (
                shapely.get_coordinates(g) for g in shapely.get_parts(clipped) if isinstance(g, shapely.LineString)
            )
            if len(c) >= 2
        )
        merged: list[list[float]] = []
        for x0, x1, y in spans:
            if merged and x0 - merged[-1][1] <= _EDGE_NUDGE_M:
                merged[-1][1] = max(merged[-1][1], x1)
            else:
                merged.append([x0, x1, y])
        if not merged:
            continue
        ends = np.array([[x0, y, x1, y] for x0, x1, y in merged]).reshape(-1, 2)
        back = points_from_work(ends, bearing_deg)
        lanes.append(
            tuple(
                ((float(back[2 * i, 0]), float(back[2 * i, 1])), (float(back[2 * i + 1, 0]), float(back[2 * i + 1, 1])))
                for i in range(len(merged))
            )
        )
    return lanes

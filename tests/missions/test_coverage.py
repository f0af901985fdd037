"""Coverage paths: safe everywhere, covering the area, shorter than a naive survey."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from missions.errors import PlanningError
from missions.planners.coverage import Coverage, coverage_path, lawnmower_path
from missions.planners.decomposition import boustrophedon_cells
from missions.planners.routing import Router
from sitl.testdata import SITES_DIR

SLACK_M = 1e-3
# The requirement: 98 % of keep-in minus keep-outs within half a spacing of the path.
MIN_COVERED_RANDOM = 0.98


def free_space(keep_in: shapely.Polygon, keep_outs: list[shapely.Polygon], margin_m: float):
    """Area to see and space to fly, built like Site.free_space."""
    holes = shapely.union_all(keep_outs) if keep_outs else shapely.Polygon()
    area = keep_in.difference(holes)
    safe = keep_in.buffer(-margin_m, join_style="mitre").difference(holes.buffer(margin_m, quad_segs=4))
    return area, safe


def star(rng: np.random.Generator, cx: float, cy: float, radius_m: float, vertices: int) -> shapely.Polygon:
    angles = np.sort(rng.uniform(0.0, 2.0 * math.pi, vertices))
    radii = radius_m * rng.uniform(0.8, 1.0, vertices)
    return shapely.Polygon(np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])).buffer(0)


def assert_safe(coverage: Coverage, safe, start, end) -> None:
    inside = safe.buffer(SLACK_M)
    xy = np.asarray(coverage.path)
    assert tuple(xy[0]) == pytest.approx(start) and tuple(xy[-1]) == pytest.approx(end)
    assert shapely.covers(inside, shapely.points(xy)).all(), "a path vertex lies outside the free space"
    legs = shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1))
    assert shapely.covers(inside, legs).all(), "a leg leaves the free space"


def covered_fraction(coverage: Coverage, area, spacing_m: float) -> float:
    seen = shapely.LineString(coverage.path).buffer(spacing_m / 2.0, quad_segs=4)
    return area.intersection(seen).area / area.area


@st.composite
def random_sites(draw):
    """A perturbed star keep-in with 0-3 star keep-outs, and spacing and margin with margin ≤ spacing/2."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    keep_in = star(rng, 0.0, 0.0, float(rng.uniform(400.0, 800.0)), int(rng.integers(5, 11)))
    keep_outs = []
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(-300.0, 300.0, 2)
        hole = star(rng, cx, cy, float(rng.uniform(40.0, 110.0)), int(rng.integers(3, 8)))
        if keep_in.buffer(-30.0).contains(hole):
            keep_outs.append(hole)
    spacing_m = float(rng.uniform(25.0, 60.0))
    margin_m = float(rng.uniform(0.0, 0.5)) * spacing_m
    area, safe = free_space(keep_in, keep_outs, margin_m)
    return area, safe, spacing_m


def launch_point(safe) -> tuple[float, float]:
    p = safe.point_on_surface()
    return (p.x, p.y)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(random_sites())
def test_coverage_path_is_safe_and_covers_random_areas(case):
    area, safe, spacing_m = case
    assume(isinstance(safe, shapely.Polygon) and isinstance(area, shapely.Polygon))
    start = launch_point(safe)
    coverage = coverage_path(area, safe, spacing_m, start)
    assert_safe(coverage, safe, start, start)
    assert covered_fraction(coverage, area, spacing_m) >= MIN_COVERED_RANDOM
    assert coverage.length_m == pytest.approx(shapely.LineString(coverage.path).length)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(random_sites())
def test_lawnmower_is_safe_and_covers_random_areas(case):
    area, safe, spacing_m = case
    assume(isinstance(safe, shapely.Polygon) and isinstance(area, shapely.Polygon))
    start = launch_point(safe)
    end = tuple(safe.exterior.interpolate(0.3, normalized=True).coords[0])
    coverage = lawnmower_path(area, safe, spacing_m, start, end, angle_deg=30.0)
    assert_safe(coverage, safe, start, end)


def test_rectangle_lanes_run_along_its_long_side():
    area, safe = free_space(shapely.box(0.0, 0.0, 2000.0, 300.0), [], 5.0)
    coverage = coverage_path(area, safe, 40.0, (10.0, 10.0))
    assert coverage.cells == 1
    assert coverage.sweep_angles_deg == (pytest.approx(90.0),)
    lanes = [(a, b) for a, b in zip(coverage.path, coverage.path[1:], strict=False) if math.dist(a, b) > 1000.0]
    assert all(abs(a[1] - b[1]) < 1e-3 for a, b in lanes)
    ys = sorted({round(a[1], 3) for a, _ in lanes})
    # Both long edges within half a spacing of a pass, no gap over a spacing, no lane to spare:
    # 300 m needs 8 passes 40 m apart (9 when the layout flies the edge contour as well).
    assert ys[0] <= 20.0 + 1e-6 and ys[-1] >= 280.0 - 1e-6
    assert max(np.diff(ys)) <= 40.0 + 1e-6
    assert len(ys) <= 9


def test_l_shape_is_covered_without_waste():
    l_shape = shapely.Polygon([(0, 0), (1500, 0), (1500, 300), (300, 300), (300, 1500), (0, 1500)])
    area, safe = free_space(l_shape, [], 5.0)
    coverage = coverage_path(area, safe, 40.0, (20.0, 20.0))
    assert_safe(coverage, safe, (20.0, 20.0), (20.0, 20.0))
    assert covered_fraction(coverage, area, 40.0) >= 0.99
    assert coverage.length_m < 1.25 * area.area / 40.0


def test_area_with_a_hole_is_decomposed_into_cells():
    area, safe = free_space(shapely.box(0.0, 0.0, 1200.0, 800.0), [shapely.box(400.0, 300.0, 800.0, 500.0)], 5.0)
    cells = boustrophedon_cells(area, 90.0)
    assert len(cells) >= 2
    assert shapely.union_all(cells).symmetric_difference(area).area < 1.0
    coverage = coverage_path(area, safe, 40.0, (20.0, 20.0))
    assert_safe(coverage, safe, (20.0, 20.0), (20.0, 20.0))
    assert covered_fraction(coverage, area, 40.0) >= 0.99
    # Whatever layout wins, it is no longer than a plain sweep of the same area.
    for angle in (0.0, 90.0):
        assert coverage.length_m <= lawnmower_path(area, safe, 40.0, (20.0, 20.0), angle_deg=angle).length_m + 1e-6


def test_square_with_hole_is_covered_around_the_hole():
    hole = shapely.box(400.0, 400.0, 600.0, 600.0)
    area, safe = free_space(shapely.box(0.0, 0.0, 1000.0, 1000.0), [hole], 10.0)
    coverage = coverage_path(area, safe, 40.0, (50.0, 50.0))
    assert_safe(coverage, safe, (50.0, 50.0), (50.0, 50.0))
    assert not shapely.LineString(coverage.path).intersects(hole.buffer(9.5))
    assert covered_fraction(coverage, area, 40.0) >= 0.99
    line = shapely.LineString(coverage.path)
    assert line.intersects(shapely.box(0.0, 400.0, 390.0, 600.0)) and line.intersects(
        shapely.box(610.0, 400.0, 1000.0, 600.0)
    )


def test_lawnmower_at_zero_degrees_flies_north_south_lanes():
    area, safe = free_space(shapely.box(0.0, 0.0, 600.0, 400.0), [], 5.0)
    coverage = lawnmower_path(area, safe, 40.0, (10.0, 10.0), angle_deg=0.0)
    legs = list(zip(coverage.path, coverage.path[1:], strict=False))
    lanes = [(a, b) for a, b in legs if abs(a[1] - b[1]) > 300.0 and abs(a[0] - b[0]) < 1e-6]
    assert len(lanes) >= 15  # 600 m wide at 40 m spacing
    assert coverage.sweep_angles_deg == (0.0,)


def test_coverage_is_shorter_than_lawnmower_on_a_non_convex_area():
    comb = shapely.Polygon(
        [(0, 0), (2000, 0), (2000, 1200), (1400, 1200), (1400, 300), (600, 300), (600, 1200), (0, 1200)]
    )
    area, safe = free_space(comb, [shapely.box(900.0, 80.0, 1100.0, 220.0)], 5.0)
    ours = coverage_path(area, safe, 40.0, (20.0, 20.0))
    base = lawnmower_path(area, safe, 40.0, (20.0, 20.0), angle_deg=90.0)
    assert ours.length_m < base.length_m


def test_unreachable_piece_is_left_out_and_reported():
    strip = shapely.box(0.0, 0.0, 2000.0, 200.0)
    wall = shapely.box(1500.0, -10.0, 1520.0, 210.0)
    area, safe = free_space(strip, [wall], 5.0)
    coverage = coverage_path(area, safe, 40.0, (20.0, 20.0))
    reachable = next(p for p in safe.geoms if p.distance(shapely.Point(20.0, 20.0)) < SLACK_M)
    assert_safe(coverage, reachable, (20.0, 20.0), (20.0, 20.0))
    assert coverage.unreached_m2 == pytest.approx(480.0 * 200.0, rel=0.01)
    with pytest.raises(PlanningError, match="cannot be reached"):
        coverage_path(area, safe, 40.0, (20.0, 20.0), end=(1900.0, 100.0))


def test_launch_outside_free_space_is_a_planning_error():
    area, safe = free_space(shapely.box(0.0, 0.0, 500.0, 500.0), [], 5.0)
    with pytest.raises(PlanningError, match="outside the free space"):
        coverage_path(area, safe, 40.0, (-100.0, 0.0))


def test_progress_is_reported_up_to_done():
    area, safe = free_space(shapely.box(0.0, 0.0, 500.0, 500.0), [shapely.box(200, 200, 300, 300)], 5.0)
    seen: list[float] = []
    coverage_path(area, safe, 40.0, (20.0, 20.0), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0


@pytest.mark.parametrize("name", ["algeciras-port", "tarifa-coast", "kilindini-mombasa"])
def test_shared_sites_are_covered_safely_and_near_the_bound(name):
    from missions.formats.geojson import read_site_geojson

    site = read_site_geojson(SITES_DIR / f"{name}.geojson")
    area, safe = site.free_space(0.0), site.free_space(5.0)
    launch = site.launch_points_m()[0]
    start = (launch.x, launch.y)
    coverage = coverage_path(area, safe, 40.0, start, router=Router(safe))
    reachable = next(p for p in getattr(safe, "geoms", [safe]) if p.distance(launch) < SLACK_M)
    assert_safe(coverage, reachable, start, start)
    assert coverage.length_m <= 1.2 * area.area / 40.0
    assert covered_fraction(coverage, area, 40.0) >= 0.98

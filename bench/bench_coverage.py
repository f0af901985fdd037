"""Coverage planner against a fixed-angle lawnmower, on every shared site.

Both are timed in the same run (best of three); lengths include the transits from and
back to the site's first launch point, and are divided by the lower bound area/spacing
(no path whose half-spacing strip covers the area can be shorter).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import shapely

from missions.formats.geojson import read_site_geojson
from missions.planners.coverage import Coverage, coverage_path, lawnmower_path
from missions.planners.routing import Router
from sitl.testdata import SITES_DIR

SITES = ("algeciras-port", "tarifa-coast", "kilindini-mombasa")
NON_CONVEX = ("tarifa-coast", "kilindini-mombasa")
SPACING_M = 40.0
MARGIN_M = 5.0
# QGroundControl's default survey angle: lanes run north–south.
BASELINE_ANGLE_DEG = 0.0
TIME_GOAL_S = 2.0
TIME_GOAL_SITE = "kilindini-mombasa"
RATIO_GOAL = 1.2
SHORTER_GOAL = 0.10


def _best_of(runs: int, plan: Callable[[], Coverage]) -> tuple[float, Coverage]:
    best_s, result = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = plan()
        best_s = min(best_s, time.perf_counter() - t0)
    assert result is not None
    return best_s, result


def _seen(coverage: Coverage, area) -> float:
    """Share of the area within half a spacing of the path: what the issue's 98 % is measured on."""
    return area.intersection(shapely.LineString(coverage.path).buffer(SPACING_M / 2, quad_segs=4)).area / area.area


def main() -> int:
    rows = []
    area_of = {}
    for name in SITES:
        site = read_site_geojson(SITES_DIR / f"{name}.geojson")
        area = site.free_space(0.0)
        safe = site.free_space(MARGIN_M)
        launch = site.launch_points_m()[0]
        start = (launch.x, launch.y)
        bound_m = area.area / SPACING_M

        # The router is part of planning, so each timed run builds its own.
        ours_s, ours = _best_of(3, lambda a=area, s=safe, p=start: coverage_path(a, s, SPACING_M, p, router=Router(s)))
        base_s, base = _best_of(
            3,
            lambda a=area, s=safe, p=start: lawnmower_path(
                a, s, SPACING_M, p, angle_deg=BASELINE_ANGLE_DEG, router=Router(s)
            ),
        )
        rows.append((name, ours_s, base_s, ours, base, bound_m))
        area_of[name] = area

    print(
        f"spacing {SPACING_M:.0f} m, margin {MARGIN_M:.0f} m, "
        f"baseline: lawnmower at {BASELINE_ANGLE_DEG:.0f}° (N–S lanes)"
    )
    header = (
        f"{'site':<20}{'ours s':>8}{'base s':>8}{'ours km':>9}{'base km':>9}{'bound km':>9}"
        f"{'ours/LB':>8}{'base/LB':>8}{'ours/base':>10}{'seen':>7}{'b.seen':>7}{'cells':>6}  angles"
    )
    print(header)
    print("-" * len(header))
    for name, ours_s, base_s, ours, base, bound_m in rows:
        angles = ",".join(f"{a:.0f}" for a in ours.sweep_angles_deg)
        print(
            f"{name:<20}{ours_s:>8.2f}{base_s:>8.2f}{ours.length_m / 1e3:>9.1f}{base.length_m / 1e3:>9.1f}"
            f"{bound_m / 1e3:>9.1f}{ours.length_m / bound_m:>8.3f}{base.length_m / bound_m:>8.3f}"
            f"{ours.length_m / base.length_m:>10.3f}{_seen(ours, area_of[name]):>7.1%}"
            f"{_seen(base, area_of[name]):>7.1%}{ours.cells:>6}  {angles}"
        )

    checks = []
    for name, ours_s, _, ours, base, bound_m in rows:
        if name == TIME_GOAL_SITE:
            checks.append((f"time ≤ {TIME_GOAL_S:.0f} s on {name}: {ours_s:.2f} s", ours_s <= TIME_GOAL_S))
        ratio = ours.length_m / bound_m
        checks.append((f"length ≤ {RATIO_GOAL}× lower bound on {name}: {ratio:.3f}", ratio <= RATIO_GOAL))
        if name in NON_CONVEX:
            shorter = 1.0 - ours.length_m / base.length_m
            text = f"≥ {SHORTER_GOAL:.0%} shorter than baseline on {name}: {shorter:.1%}"
            headroom = 1.0 - bound_m / base.length_m
            if headroom < SHORTER_GOAL:
                # No path can be shorter than the lower bound, so the goal needs a worse baseline.
                text += f" (unattainable: the baseline is only {headroom:.1%} above the lower bound)"
            checks.append((text, shorter >= SHORTER_GOAL))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1

"""Dark vessels and AIS targets not seen, on synthetic scenes in the site's metric frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import shapely

from vision.ais.findings import FEED_DEAD_REASON, MIN_INSIDE_S, AisNotSeenWatch, DarkVesselWatch
from vision.ais.matching import Matcher
from vision.ais.model import KNOT_M_S, AisClass, AisTarget, TrackFix

T0 = 1_750_000_000.0
ZONE = shapely.box(0.0, 0.0, 1000.0, 1000.0)
LIMIT_S = 60.0
FOOTPRINT = shapely.box(0.0, 0.0, 200.0, 150.0)


def fix(key: str, time_s: float, x_m: float, y_m: float, vx_m_s: float = 0.0, vy_m_s: float = 0.0) -> TrackFix:
    return TrackFix(key, time_s, x_m, y_m, 15.0, vx_m_s, vy_m_s)


def target(
    mmsi: int, time_s: float, x_m: float, y_m: float, vx_m_s: float = 0.0, vy_m_s: float = 0.0, **kw
) -> AisTarget:
    fields = {
        "error_m": 20.0,
        "sog_kn": math.hypot(vx_m_s, vy_m_s) / KNOT_M_S,
        "cog_deg": math.degrees(math.atan2(vx_m_s, vy_m_s)) % 360.0,
        "name": None,
    } | kw
    return AisTarget(
        mmsi=mmsi,
        time_s=time_s,
        lat_deg=0.0,
        lon_deg=0.0,
        x_m=x_m,
        y_m=y_m,
        age_s=2.0,
        heading_deg=None,
        ais_class=AisClass.A,
        **fields,
    )


def seconds(start: float, stop: float) -> list[float]:
    return [T0 + s for s in np.arange(start, stop, 1.0)]


def test_a_dark_vessel_in_a_zone_past_its_limit_is_found_once() -> None:
    watch = DarkVesselWatch({"anchorage": ZONE}, {"anchorage": LIMIT_S})
    found = {t - T0: watch.update([fix("camera-1#1", t, 500.0, 500.0)], {}, t, True) for t in seconds(0, 180)}
    hits = [(t, f) for t, fs in found.items() for f in fs]
    assert len(hits) == 1
    time_s, dark = hits[0]
    assert time_s == 61.0
    assert (dark.key, dark.zone, dark.since_s, dark.time_s) == ("camera-1#1", "anchorage", T0, T0 + 61.0)
    assert (dark.x_m, dark.y_m) == (500.0, 500.0)
    assert watch.suspended_reason is None


def test_a_vessel_bound_before_the_limit_is_never_dark() -> None:
    watch = DarkVesselWatch({"anchorage": ZONE}, {"anchorage": LIMIT_S})
    for t in seconds(0, 300):
        bindings = {"camera-1#1": 244000001} if t >= T0 + 30.0 else {}
        assert watch.update([fix("camera-1#1", t, 500.0, 500.0)], bindings, t, True) == []


def test_leaving_the_zone_restarts_the_timer_and_each_zone_finds_once() -> None:
    inner = shapely.box(400.0, 400.0, 600.0, 600.0)
    watch = DarkVesselWatch({"anchorage": ZONE, "berth": inner}, {"anchorage": LIMIT_S, "berth": 90.0})
    found = []
    for t in seconds(0, 300):
        outside = T0 + 40.0 <= t < T0 + 50.0
        found += watch.update([fix("camera-1#1", t, 1500.0 if outside else 500.0, 500.0)], {}, t, True)
    assert [(f.zone, f.since_s - T0, f.time_s - T0) for f in found] == [
        ("anchorage", 50.0, 111.0),
        ("berth", 50.0, 141.0),
    ]


def test_a_dead_feed_finds_nothing_says_why_and_restarts_the_timers_when_it_returns() -> None:
    watch = DarkVesselWatch({"anchorage": ZONE}, {"anchorage": LIMIT_S})
    found, reasons = [], set()
    for t in seconds(0, 300):
        live = not T0 + 10.0 <= t < T0 + 100.0
        found += watch.update([fix("camera-1#1", t, 500.0, 500.0)], {}, t, live)
        reasons.add(watch.suspended_reason)
        assert (watch.suspended_reason is None) == live
    assert reasons == {None, FEED_DEAD_REASON} and FEED_DEAD_REASON == "AIS feed dead: dark-vessel alerts paused"
    assert [(f.since_s - T0, f.time_s - T0) for f in found] == [(100.0, 161.0)]


def test_a_zone_without_a_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="'berth'"):
        DarkVesselWatch({"anchorage": ZONE, "berth": ZONE}, {"anchorage": LIMIT_S})


def test_a_spoofed_position_in_view_with_nothing_near_is_found_once_after_min_inside_s() -> None:
    watch = AisNotSeenWatch()
    found = []
    for t in seconds(0, 120):
        far_vessel = fix("camera-1#1", t, 10.0, 140.0)  # 100 m from the spoof: beyond 50 m + its 20 m error
        found += watch.update([target(244000001, t, 100.0, 75.0, name="SEA SPIRIT")], [FOOTPRINT], [far_vessel], t)
    assert len(found) == 1
    assert found[0].time_s - T0 == MIN_INSIDE_S == found[0].inside_s
    assert (found[0].mmsi, found[0].label, found[0].x_m, found[0].y_m) == (
        244000001,
        "SEA SPIRIT (MMSI 244000001)",
        100.0,
        75.0,
    )


@pytest.mark.parametrize(
    ("fix_xy", "target_xy", "footprints"),
    [
        pytest.param((130.0, 75.0), (100.0, 75.0), [FOOTPRINT], id="a vessel 30 m away"),
        pytest.param(None, (100.0, 10.0), [FOOTPRINT], id="10 m inside the edge"),
        pytest.param(None, (100.0, 75.0), [shapely.Polygon()], id="no camera looking"),
        pytest.param(None, (100.0, 75.0), [], id="no footprint at all"),
    ],
)
def test_an_ais_target_that_is_seen_or_not_well_in_view_is_not_found(
    fix_xy: tuple[float, float] | None, target_xy: tuple[float, float], footprints: list
) -> None:
    watch = AisNotSeenWatch()
    for t in seconds(0, 120):
        fixes = [fix("camera-1#1", t, *fix_xy)] if fix_xy else []
        assert watch.update([target(244000001, t, *target_xy)], footprints, fixes, t) == []


def test_time_in_view_adds_up_over_passes_and_a_vessel_seen_rearms_the_finding() -> None:
    watch = AisNotSeenWatch()
    found = []
    for t in seconds(0, 200):
        s = t - T0
        in_view = s < 10.0 or 40.0 <= s < 50.0 or s >= 100.0
        seen = 60.0 <= s < 70.0
        fixes = [fix("camera-1#1", t, 100.0, 80.0)] if seen else []
        found += watch.update([target(244000001, t, 100.0, 75.0)], [FOOTPRINT] if in_view else [], fixes, t)
    # 9 s on the first pass, the next 6 s on the second; then seen, then 15 s unseen again.
    assert [(f.time_s - T0, f.inside_s) for f in found] == [(46.0, 15.0), (115.0, 15.0)]


# A randomized patrol: 20 vessels, 3 of them dark, and 2 AIS positions where no vessel is.

AREA_M = 2000.0
SCENE_ZONE = shapely.box(200.0, 200.0, 1800.0, 1800.0)
SCENE_LIMIT_S = 30.0
# Two cameras, each looking at half of the area.
SCENE_FOOTPRINTS = [shapely.box(0.0, 0.0, 1000.0, AREA_M), shapely.box(1000.0, 0.0, AREA_M, AREA_M)]
DURATION_S = 120
DETECTION_P = 0.9
REPORT_EVERY_S = 10


@dataclass(frozen=True)
class Mover:
    """A straight line at constant speed, sampled each second of the scene."""

    x_m: np.ndarray
    y_m: np.ndarray
    vx_m_s: float
    vy_m_s: float


def mover(rng: np.random.Generator, max_speed_m_s: float = 6.0) -> Mover:
    x0, y0 = rng.uniform(400.0, 1600.0, 2)
    course, speed = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(1.5, max_speed_m_s)
    vx, vy = speed * math.sin(course), speed * math.cos(course)
    s = np.arange(DURATION_S, dtype=float)
    return Mover(x0 + vx * s, y0 + vy * s, vx, vy)


def ais_offsets(rng: np.random.Generator, error_m: float) -> np.ndarray:
    """Dead-reckoning error: a new offset at each report (every 10 s), held between them."""
    per_report = rng.normal(0.0, error_m / 2.0, (DURATION_S // REPORT_EVERY_S + 2, 2))
    phase = int(rng.integers(REPORT_EVERY_S))
    return per_report[(np.arange(DURATION_S) + phase) // REPORT_EVERY_S]


def stays_inside(m: Mover, zone: shapely.Geometry, depth_m: float, for_s: float) -> bool:
    inner = zone.buffer(-depth_m)
    run = best = 0
    for inside in shapely.contains_xy(inner, m.x_m, m.y_m):
        run = run + 1 if inside else 0
        best = max(best, run)
    return best > for_s


def scene(seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    vessels = [mover(rng) for _ in range(20)]
    dark = set(range(3))
    spoofs = []
    while len(spoofs) < 2:
        spoof = mover(rng, max_speed_m_s=4.0)
        gaps = [np.min(np.hypot(spoof.x_m - v.x_m, spoof.y_m - v.y_m)) for v in vessels]
        if min(gaps) > 150.0:
            spoofs.append(spoof)
    reporting = [(i, v) for i, v in enumerate(vessels) if i not in dark]
    ais = [(244000000 + i, v, rng.uniform(12.0, 30.0)) for i, v in reporting]
    ais += [(990000000 + j, s, 20.0) for j, s in enumerate(spoofs)]
    offsets = [ais_offsets(rng, error_m) for _, _, error_m in ais]
    keys = [f"track#{i}" for i in range(len(vessels))]

    matcher, dark_watch, unseen_watch = (
        Matcher(),
        DarkVesselWatch({"zone": SCENE_ZONE}, {"zone": SCENE_LIMIT_S}),
        AisNotSeenWatch(),
    )
    counts = dict.fromkeys(
        ("bindings", "right", "wrong", "dark_found", "dark_right", "unseen_found", "unseen_right"), 0
    )
    dark_keys, unseen_mmsis = set(), set()
    for s in range(DURATION_S):
        now_s = T0 + s
        fixes = []
        for key, v in zip(keys, vessels, strict=True):
            if rng.random() < DETECTION_P and 0.0 <= v.x_m[s] <= AREA_M and 0.0 <= v.y_m[s] <= AREA_M:
                x_m, y_m = np.add(rng.normal(0.0, 7.5, 2), (v.x_m[s], v.y_m[s]))
                vx_m_s, vy_m_s = np.add(rng.normal(0.0, 0.3, 2), (v.vx_m_s, v.vy_m_s))
                fixes.append(TrackFix(key, now_s, x_m, y_m, 15.0, vx_m_s, vy_m_s))
        targets = [
            target(mmsi, now_s, m.x_m[s] + off[s, 0], m.y_m[s] + off[s, 1], m.vx_m_s, m.vy_m_s, error_m=error_m)
            for (mmsi, m, error_m), off in zip(ais, offsets, strict=True)
        ]
        update = matcher.update(fixes, targets, now_s)
        if s >= 5:
            for f in fixes:
                i = keys.index(f.key)
                if i not in dark:
                    counts["bindings"] += 1
                    bound = update.bound.get(f.key)
                    counts["right"] += bound == 244000000 + i
                    counts["wrong"] += bound not in (None, 244000000 + i)
        dark_keys |= {d.key for d in dark_watch.update(fixes, update.bound, now_s, True)}
        unseen_mmsis |= {u.mmsi for u in unseen_watch.update(targets, SCENE_FOOTPRINTS, fixes, now_s)}

    # A dark vessel must be found when it stayed well inside the zone for well past the limit.
    should_be_dark = {keys[i] for i in dark if stays_inside(vessels[i], SCENE_ZONE, 30.0, SCENE_LIMIT_S + 10.0)}
    counts["dark_expected"] = len(should_be_dark)
    counts["dark_recalled"] = len(dark_keys & should_be_dark)
    counts["dark_found"] = len(dark_keys)
    counts["dark_right"] = len({k for k in dark_keys if keys.index(k) in dark})
    spoof_mmsis = {mmsi for mmsi, *_ in ais if mmsi >= 990000000}
    counts["spoofs"] = len(spoof_mmsis)
    counts["unseen_found"] = len(unseen_mmsis)
    counts["unseen_right"] = len(unseen_mmsis & spoof_mmsis)
    return counts


def test_a_randomized_patrol_binds_reporting_vessels_and_finds_the_dark_and_the_spoofed() -> None:
    totals: dict[str, int] = {}
    for seed in range(8):
        for name, n in scene(seed).items():
            totals[name] = totals.get(name, 0) + n
    right = totals["right"] / totals["bindings"]
    dark_recall = totals["dark_recalled"] / totals["dark_expected"]
    dark_precision = totals["dark_right"] / max(totals["dark_found"], 1)
    spoof_recall = totals["unseen_right"] / totals["spoofs"]
    unseen_precision = totals["unseen_right"] / max(totals["unseen_found"], 1)
    print(
        f"\n8 scenes: {right:.1%} of {totals['bindings']} fixes after 5 s bound to their own MMSI"
        f" ({totals['wrong']} to another); dark: recall {dark_recall:.0%} of {totals['dark_expected']},"
        f" precision {dark_precision:.0%} of {totals['dark_found']}; spoofed: recall {spoof_recall:.0%}"
        f" of {totals['spoofs']}, precision {unseen_precision:.0%} of {totals['unseen_found']}"
    )
    assert right >= 0.95
    assert totals["wrong"] <= 0.01 * totals["bindings"]
    assert totals["dark_expected"] >= 15
    assert dark_recall >= 0.90 and dark_precision >= 0.95
    assert spoof_recall >= 0.90 and unseen_precision >= 0.95

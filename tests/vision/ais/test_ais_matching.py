"""Binding vessel tracks to AIS targets, on synthetic scenes in the site's metric frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from vision.ais.matching import MatchConfig, Matcher, MatchUpdate
from vision.ais.model import KNOT_M_S, AisClass, AisTarget, TrackFix

T0 = 1_750_000_000.0
FIX_ERROR_M = 15.0
AIS_ERROR_M = 20.0


def target(mmsi: int, time_s: float, x_m: float, y_m: float, vx_m_s: float, vy_m_s: float, **kw) -> AisTarget:
    speed_m_s = math.hypot(vx_m_s, vy_m_s)
    fields = {
        "error_m": AIS_ERROR_M,
        "sog_kn": speed_m_s / KNOT_M_S,
        "cog_deg": math.degrees(math.atan2(vx_m_s, vy_m_s)) % 360.0,
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


@dataclass(frozen=True)
class Vessel:
    """A vessel on a straight line: at ``x0_m, y0_m`` at T0, making ``vx_m_s, vy_m_s``."""

    key: str
    mmsi: int | None
    x0_m: float
    y0_m: float
    vx_m_s: float
    vy_m_s: float

    def at(self, time_s: float) -> tuple[float, float]:
        return self.x0_m + self.vx_m_s * (time_s - T0), self.y0_m + self.vy_m_s * (time_s - T0)

    def fix(self, time_s: float, rng: np.random.Generator) -> TrackFix:
        # A 2-sigma radius of e is a per-axis sigma of about e/2.
        x_m, y_m = np.array(self.at(time_s)) + rng.normal(0.0, FIX_ERROR_M / 2, 2)
        vx_m_s, vy_m_s = np.array([self.vx_m_s, self.vy_m_s]) + rng.normal(0.0, 0.3, 2)
        return TrackFix(self.key, time_s, float(x_m), float(y_m), FIX_ERROR_M, float(vx_m_s), float(vy_m_s))

    def target(self, time_s: float, rng: np.random.Generator) -> AisTarget:
        assert self.mmsi is not None
        x_m, y_m = np.array(self.at(time_s)) + rng.normal(0.0, AIS_ERROR_M / 2, 2)
        return target(self.mmsi, time_s, float(x_m), float(y_m), self.vx_m_s, self.vy_m_s)


def heading(key: str, mmsi: int | None, x0_m: float, y0_m: float, course_deg: float, speed_m_s: float) -> Vessel:
    course = math.radians(course_deg)
    return Vessel(key, mmsi, x0_m, y0_m, speed_m_s * math.sin(course), speed_m_s * math.cos(course))


def run(matcher: Matcher, vessels: list[Vessel], times: list[float], seed: int = 1) -> list[MatchUpdate]:
    rng = np.random.default_rng(seed)
    updates = []
    for time_s in times:
        fixes = [v.fix(time_s, rng) for v in vessels]
        targets = [v.target(time_s, rng) for v in vessels if v.mmsi is not None]
        updates.append(matcher.update(fixes, targets, time_s))
    return updates


def seconds(n: int, start: float = 0.0) -> list[float]:
    return [T0 + start + i for i in range(n)]


def test_each_reporting_vessel_is_bound_to_its_own_mmsi_after_three_updates_and_not_before() -> None:
    vessels = [heading(f"camera-1#{i}", 244000000 + i, 300.0 * i, 100.0 * (i % 2), 30.0 * i, 3.0 + i) for i in range(6)]
    matcher = Matcher()
    # Seed 0 draws no true pair beyond the gate in the first three updates (each does about 1 % of
    # the time, and then binds one update later).
    updates = run(matcher, vessels, seconds(10), seed=0)
    expected = {v.key: v.mmsi for v in vessels}
    assert updates[0].bound == {} and updates[1].bound == {}
    assert updates[0].matches == expected
    assert updates[2].bound == expected
    assert sorted(updates[2].newly_bound) == sorted(expected.items())
    assert all(u.bound == expected and not u.newly_bound and not u.released for u in updates[3:])
    assert matcher.binding("camera-1#4") == 244000004
    assert matcher.binding("camera-1#99") is None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param((0.0, 0.0, 80.0, 5.0), (0.0, 0.0, 100.0, 5.0), id="crossing at 20 degrees"),
        pytest.param((0.0, 0.0, 90.0, 6.0), (0.0, 5.0, 90.0, 3.5), id="overtaking 5 m apart"),
    ],
)
def test_two_vessels_passing_close_keep_their_own_mmsis(first: tuple, second: tuple) -> None:
    a = heading("camera-1#1", 244000001, *first)
    b = heading("camera-1#2", 244000002, *second)
    # They meet at T0: from 30 s before (about 50 m apart) to 30 s after.
    times = seconds(60, start=-30.0)
    for seed in range(10):
        updates = run(Matcher(), [a, b], times, seed=seed)
        closest = min(math.dist(a.at(t), b.at(t)) for t in times)
        assert closest < 10.0
        right = {a.key: a.mmsi, b.key: b.mmsi}
        assert all(u.bound.items() <= right.items() for u in updates), f"seed {seed}: swapped"
        assert all(u.bound == right for u in updates[5:]), f"seed {seed}"
        assert not any(u.released for u in updates)


def test_a_target_far_away_never_matches() -> None:
    vessel = heading("camera-1#1", None, 0.0, 0.0, 90.0, 4.0)
    matcher = Matcher()
    rng = np.random.default_rng(3)
    for time_s in seconds(20):
        far = target(244000001, time_s, *np.add(vessel.at(time_s), (500.0, 0.0)), vessel.vx_m_s, vessel.vy_m_s)
        update = matcher.update([vessel.fix(time_s, rng)], [far], time_s)
        assert update.matches == {} and update.bound == {}


@pytest.mark.parametrize(
    ("course_deg", "speed_m_s", "matches"),
    [
        pytest.param(270.0, 4.0, False, id="opposite course"),
        pytest.param(0.0, 4.0, False, id="crossing course"),
        pytest.param(120.0, 4.0, True, id="30 degrees off"),
        pytest.param(90.0, 12.0, False, id="three times as fast"),
        pytest.param(90.0, 5.5, True, id="1.5 m/s faster"),
        pytest.param(90.0, 0.0, False, id="at anchor"),
    ],
)
def test_a_target_at_the_same_place_is_gated_out_by_course_and_speed(
    course_deg: float, speed_m_s: float, matches: bool
) -> None:
    vessel = heading("camera-1#1", None, 0.0, 0.0, 90.0, 4.0)  # east at 4 m/s
    other = heading("ais", None, 0.0, 0.0, course_deg, speed_m_s)
    fix = TrackFix(vessel.key, T0, 0.0, 0.0, FIX_ERROR_M, vessel.vx_m_s, vessel.vy_m_s)
    update = Matcher().update([fix], [target(244000001, T0, 5.0, 5.0, other.vx_m_s, other.vy_m_s)], T0)
    assert update.matches == ({vessel.key: 244000001} if matches else {})


def test_a_drifting_boat_matches_a_target_at_anchor_and_a_fix_without_velocity_matches_anything_near() -> None:
    drifting = TrackFix("camera-1#1", T0, 0.0, 0.0, FIX_ERROR_M, 0.3, -0.2)
    no_velocity = TrackFix("camera-1#2", T0, 400.0, 0.0, FIX_ERROR_M)
    anchored = target(244000001, T0, 10.0, 0.0, 0.0, 0.0)
    moving = target(244000002, T0, 400.0, 10.0, 0.0, 6.0)
    update = Matcher().update([drifting, no_velocity], [anchored, moving], T0)
    assert update.matches == {"camera-1#1": 244000001, "camera-1#2": 244000002}


def test_a_binding_is_released_after_five_updates_that_do_not_match() -> None:
    vessel = heading("camera-1#1", 244000001, 0.0, 0.0, 90.0, 4.0)
    matcher = Matcher()
    run(matcher, [vessel], seconds(5))
    assert matcher.binding(vessel.key) == 244000001
    rng = np.random.default_rng(2)
    released_at = []
    for i, time_s in enumerate(seconds(8, start=5.0)):
        # The transponder now reports a position 300 m off: its vessel is not the one the camera sees.
        x_m, y_m = vessel.at(time_s)
        moved = target(244000001, time_s, x_m, y_m + 300.0, vessel.vx_m_s, vessel.vy_m_s)
        update = matcher.update([vessel.fix(time_s, rng)], [moved], time_s)
        assert update.matches == {}
        if update.released:
            released_at.append((i, update.released))
    assert released_at == [(MatchConfig().release_after - 1, ((vessel.key, 244000001),))]
    assert matcher.binding(vessel.key) is None and matcher.bindings == {}


def test_a_binding_is_released_20_s_after_its_target_leaves_the_table() -> None:
    vessel = heading("camera-1#1", 244000001, 0.0, 0.0, 90.0, 4.0)
    matcher = Matcher()
    run(matcher, [vessel], seconds(3))
    rng = np.random.default_rng(4)
    released = {t: matcher.update([vessel.fix(t, rng)], [], t).released for t in seconds(30, start=3.0)}
    assert [t - T0 for t, r in released.items() if r] == [22.0]  # last matched at 2 s


def test_a_second_track_on_a_bound_mmsi_waits_until_the_first_is_released() -> None:
    first = heading("camera-1#1", 244000001, 0.0, 0.0, 90.0, 4.0)
    matcher = Matcher()
    run(matcher, [first], seconds(4))
    # Camera 1 loses the vessel; camera 2 picks it up under another key.
    second = Vessel("camera-2#5", 244000001, first.x0_m, first.y0_m, first.vx_m_s, first.vy_m_s)
    updates = run(matcher, [second], seconds(20, start=4.0), seed=5)
    bound_at = [i for i, u in enumerate(updates) if u.newly_bound]
    assert all(u.matches == {second.key: 244000001} for u in updates)
    # Forgotten 15 s after its last fix (at 3 s), so first released at 19 s; second bound then.
    assert bound_at == [15]
    assert updates[15].released == ((first.key, 244000001),)
    assert updates[15].newly_bound == ((second.key, 244000001),)
    assert all(u.bound == {first.key: 244000001} for u in updates[:15])
    assert matcher.binding(first.key) is None and matcher.binding(second.key) == 244000001


def test_a_match_to_another_mmsi_restarts_the_count() -> None:
    matcher = Matcher()
    fix = [TrackFix("camera-1#1", T0 + i, 0.0, 0.0, FIX_ERROR_M) for i in range(6)]
    mmsis = [1, 1, 2, 2, 2, 2]
    bound = [
        matcher.update([f], [target(m, f.time_s, 0.0, 0.0, 0.0, 0.0)], f.time_s).bound
        for f, m in zip(fix, mmsis, strict=True)
    ]
    assert bound == [{}, {}, {}, {}, {"camera-1#1": 2}, {"camera-1#1": 2}]

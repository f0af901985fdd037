"""Patrol patterns, drones and batteries on the shared sites: what an operator would check."""

from __future__ import annotations

import json
import math

import pytest
import shapely

from missions.errors import InputError, PlanningError
from missions.formats import load_site
from missions.planners.cycles import weighted_sequence
from missions.planners.kpi import compute_kpis
from missions.planners.paths import cumulative, rotate_closed
from missions.planners.patrol import Along, PatrolRequest, Pattern, plan_patrol
from missions.site import RoutePoint
from sitl.testdata import SITES_DIR


def site(name: str):
    return load_site(SITES_DIR / f"{name}.geojson")


def assert_safe(patrol, margin_m: float) -> None:
    """Every waypoint and every leg stays in the keep-in, clear of every keep-out by the margin.

    The launch point itself may be nearer an edge than the margin: the drone climbs out of it.
    """
    s = patrol.site
    keep_out = s.keep_out_m
    keep_in = s.keep_in_m
    launches = [p.buffer(2 * margin_m + 1.5) for p in s.launch_points_m()]
    for sortie in patrol.sorties:
        line = shapely.LineString(sortie.path_m)
        assert keep_in.buffer(1e-3).covers(line), f"drone {sortie.drone} sortie {sortie.number} leaves the keep-in"
        assert not line.intersects(keep_out.buffer(-1e-3)), "a leg crosses a keep-out"
        away = line.difference(shapely.union_all(launches))
        if not away.is_empty:
            assert away.distance(keep_out) >= margin_m - 0.01 if not keep_out.is_empty else True
            assert keep_in.buffer(-(margin_m - 0.01)).covers(away)


@pytest.mark.parametrize("name", ["algeciras-port", "kilindini-mombasa"])
def test_perimeter_follows_the_boundary_at_the_standoff(name):
    s = site(name)
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.PERIMETER, standoff_m=60.0, along=Along.BOUNDARY))
    assert_safe(patrol, 10.0)
    lap = patrol.lap.points
    assert lap[0] == lap[-1]
    boundary = s.keep_in_m.exterior
    keep_out = s.keep_out_m.buffer(80)
    distances = [boundary.distance(shapely.Point(p)) for p in lap if not keep_out.contains(shapely.Point(p))]
    on_track = sum(abs(d - 60.0) < 1.0 for d in distances) / len(distances)
    assert on_track > 0.9
    # The lap goes all the way round: its length is close to the inset boundary's.
    inset = s.keep_in_m.buffer(-60.0, join_style="mitre").exterior.length
    assert 0.95 * inset < cumulative(lap)[-1] < 1.3 * inset


def test_coast_patrol_keeps_to_the_water_side_at_its_offset():
    s = site("tarifa-coast")
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.PERIMETER, standoff_m=150.0))
    assert_safe(patrol, 10.0)
    coast = s.local(s.coastline)
    lap = patrol.lap.points
    distances = [coast.distance(shapely.Point(p)) for p in lap]
    assert sum(abs(d - 150.0) < 2.0 for d in distances) / len(distances) > 0.8
    # Water side: the side where the operating area lies, so the track is inside it far from the shore.
    assert s.keep_in_m.covers(shapely.LineString(lap))


def test_risk_weights_make_visits_proportional():
    assert sorted(weighted_sequence({"a": 4, "b": 2})) == ["a", "a", "b"]
    order = weighted_sequence({"hi": 5, "mid": 3, "lo": 1})
    assert order.count("hi") == 5 and order.count("mid") == 3 and order.count("lo") == 1
    # Spread out: the high-risk zone never waits more than two stops, around the lap too.
    stops = [k for k, z in enumerate(order) if z == "hi"]
    gaps = [b - a for a, b in zip(stops, [*stops[1:], stops[0] + len(order)], strict=True)]
    assert max(gaps) <= 2


@pytest.mark.parametrize("drones", [1, 2, 3])
def test_risk_patrol_revisits_high_risk_zones_more_often(drones):
    s = site("algeciras-port")
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.RISK, drones=drones))
    assert_safe(patrol, 10.0)
    kpis = compute_kpis(patrol)
    by_name = {r.name: r for r in kpis.revisits}
    anchorage, quay = by_name["Eastern anchorage"], by_name["Container quay"]
    assert (anchorage.risk, quay.risk) == (4, 2)
    assert anchorage.visits_per_lap == 2 * quay.visits_per_lap
    assert anchorage.mean_interval_s == pytest.approx(quay.mean_interval_s / 2, rel=0.01)
    assert quay.mean_interval_s == pytest.approx(patrol.lap_time_s / drones, rel=0.01)


@pytest.mark.parametrize("drones", [2, 3, 4])
def test_drones_are_spread_evenly_around_one_lap(drones):
    s = site("kilindini-mombasa")
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.PERIMETER, drones=drones))
    total = cumulative(patrol.lap.points)[-1]
    assert patrol.phase_offsets_m == pytest.approx([total * k / drones for k in range(drones)])
    entries = [sortie.path_m[sortie.loop[0]] for sortie in patrol.sorties]
    for k, entry in enumerate(entries):
        expected = rotate_closed(patrol.lap.points, total * k / drones)[0]
        assert math.dist(entry, expected) < 1e-6
    # Staggered take-offs: every drone reaches its place on the lap at the same moment.
    arrivals = {round(s.start_delay_s + _time_to_entry(patrol, s), 3) for s in patrol.sorties}
    assert max(arrivals) - min(arrivals) < 1e-3
    likoni = next(r for r in compute_kpis(patrol).revisits if r.name == "Likoni ferry crossing")
    assert likoni.max_interval_s == pytest.approx(patrol.lap_time_s / drones, rel=0.02)


def _time_to_entry(patrol, sortie):
    from missions.planners.paths import flight_time_s

    return flight_time_s(sortie.path_m[: sortie.loop[0] + 1], patrol.request.flight_model)


def test_endurance_splits_a_long_lap_into_sorties_that_each_fit(tmp_path):
    s = site("kilindini-mombasa")
    request = PatrolRequest(pattern=Pattern.RISK, endurance_min=30, reserve_pct=20)
    patrol = plan_patrol(s, request)
    assert len(patrol.sorties) > 1
    launch = (s.launch_points_m()[0].x, s.launch_points_m()[0].y)
    for sortie in patrol.sorties:
        assert sortie.time_s <= 30 * 60 * 0.8 + 1e-6
        assert math.dist(sortie.path_m[0], launch) < 1e-6 and math.dist(sortie.path_m[-1], launch) < 1e-6
    assert_safe(patrol, 10.0)
    assert any("does not fit one battery" in w for w in patrol.warnings)


def test_endurance_fills_the_battery_with_whole_laps():
    s = site("algeciras-port")
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.RISK, endurance_min=60, reserve_pct=25))
    (sortie,) = patrol.sorties
    assert sortie.laps >= 2
    assert sortie.time_s <= 45 * 60
    assert sortie.time_s + patrol.lap_time_s > 45 * 60


def test_too_short_a_battery_is_refused_with_the_reason():
    with pytest.raises(PlanningError, match="one battery cannot reach the patrol"):
        plan_patrol(site("tarifa-coast"), PatrolRequest(pattern=Pattern.PERIMETER, endurance_min=10))


def test_loop_routes_around_a_keep_out_between_its_points():
    s = site("algeciras-port")
    fuel = next(z for z in s.no_fly if z.is_circle).shape_deg
    # Two points on either side of the fuel terminal circle: the straight leg would cross it.
    west = RoutePoint(fuel.y, fuel.x - 0.004)
    east = RoutePoint(fuel.y, fuel.x + 0.004)
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.LOOP, route=(west, east)))
    assert_safe(patrol, 10.0)
    assert len(patrol.lap.points) > 3


def test_loop_point_in_a_keep_out_is_refused_naming_it():
    s = site("algeciras-port")
    fuel = next(z for z in s.no_fly if z.is_circle).shape_deg
    route = (RoutePoint(fuel.y, fuel.x - 0.004), RoutePoint(fuel.y, fuel.x))
    with pytest.raises(PlanningError, match=r"route point 2 \(36\.120000, -5\.430000\) is outside the operating area"):
        plan_patrol(s, PatrolRequest(pattern=Pattern.LOOP, route=route))


def test_loop_without_a_route_says_where_to_give_one():
    with pytest.raises(InputError, match="the loop pattern needs a route"):
        plan_patrol(site("algeciras-port"), PatrolRequest(pattern=Pattern.LOOP))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (PatrolRequest(altitude_m=150), "flight altitude 150 m is above the site's altitude limit of 120 m"),
        (PatrolRequest(altitude_m=-5), "must be above the ground"),
        (PatrolRequest(drones=0), "the number of drones must be at least 1"),
        (PatrolRequest(speed_m_s=80), "cruise speed 80 m/s is outside"),
        (PatrolRequest(endurance_min=-1), "battery endurance must be positive"),
        (PatrolRequest(reserve_pct=100), "battery reserve must be from 0 to below 100"),
        (PatrolRequest(spacing_m=0), "lane spacing must be positive"),
        (PatrolRequest(spacing_m=0.01), "raise the lane spacing or the altitude"),
        (PatrolRequest(pattern=Pattern.PERIMETER, standoff_m=5000, along=Along.BOUNDARY), "leaves nothing"),
    ],
)
def test_requests_that_make_no_sense_are_refused(request_, message):
    with pytest.raises((InputError, PlanningError), match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_patrol(site("algeciras-port"), request_)


def test_site_without_a_launch_point_is_refused(tmp_path):
    doc = json.loads((SITES_DIR / "algeciras-port.geojson").read_text())
    doc["features"] = [f for f in doc["features"] if f["properties"]["role"] != "launch"]
    path = tmp_path / "nolaunch.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"nolaunch\.geojson: the site has no launch point"):
        plan_patrol(load_site(path), PatrolRequest(pattern=Pattern.RISK))


@pytest.mark.parametrize(("name", "drones"), [("algeciras-port", 2), ("algeciras-port", 3), ("kilindini-mombasa", 4)])
def test_coverage_is_shared_among_drones_within_ten_percent(name, drones):
    s = site(name)
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.COVERAGE, drones=drones, spacing_m=80.0))
    assert_safe(patrol, 10.0)
    times = [k.flight_time_s for k in compute_kpis(patrol).per_drone]
    assert len(times) == drones
    assert max(times) <= 1.10 * min(times)
    kpis = compute_kpis(patrol)
    assert kpis.seen_share >= 0.98
    assert kpis.length_ratio <= 1.2 + 0.05 * drones  # each extra drone adds its own transits


def test_coverage_sorties_each_fit_one_battery_and_still_see_the_area():
    s = site("algeciras-port")
    patrol = plan_patrol(s, PatrolRequest(pattern=Pattern.COVERAGE, drones=2, endurance_min=20, reserve_pct=25))
    assert len(patrol.sorties) > 2
    launch = (s.launch_points_m()[0].x, s.launch_points_m()[0].y)
    for sortie in patrol.sorties:
        assert sortie.time_s <= 20 * 60 * 0.75 + 1e-6
        assert math.dist(sortie.path_m[0], launch) < 1e-6 and math.dist(sortie.path_m[-1], launch) < 1e-6
    assert_safe(patrol, 10.0)
    kpis = compute_kpis(patrol)
    assert kpis.seen_share >= 0.98
    assert kpis.sorties == len(patrol.sorties)

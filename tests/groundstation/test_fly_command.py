"""`borderwatch fly`: exit codes and report, against the built-in simulator and real PX4 SITL on 127.0.0.1."""

from __future__ import annotations

import pytest

from groundstation.commands.cli import main
from missions.formats.qgc_plan import read_plan, write_plan
from missions.plan import FencePolygon, MissionItem, MissionPlan, Waypoint
from sitl.testdata import SITES_DIR

D = 0.0009  # ~100 m of latitude


def _plan(home: tuple[float, float], *, outside: bool = False) -> MissionPlan:
    lat, lon = home
    far = 0.02 if outside else D
    r = 5 * D
    box = ((lat - r, lon - r), (lat + r, lon - r), (lat + r, lon + r), (lat - r, lon + r))
    return MissionPlan(
        items=(
            MissionItem.takeoff(lat, lon, 20.0),
            MissionItem.waypoint(lat + D, lon, 20.0),
            MissionItem.waypoint(lat + D, lon + far, 20.0),
            MissionItem.return_to_launch(),
        ),
        home=Waypoint(lat, lon, 10.0),
        fence_polygons=(FencePolygon(box, inclusion=True),),
    )


def _write(tmp_path, name: str, plan: MissionPlan) -> str:
    path = tmp_path / name
    write_plan(plan, path)
    return str(path)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_fly_reports_and_exits_0_when_every_mission_completed_and_every_vehicle_landed(tmp_path, sim_fleet, capsys):
    sim = sim_fleet(2, speed_factor=15)
    plans = [_write(tmp_path, f"v{i}.plan", _plan(v.home)) for i, v in enumerate(sim.vehicles)]
    connect = [arg for v in sim.vehicles for arg in ("--connect", v.connect_url)]
    assert main(["fly", *plans, *connect, "--timeout", "90", "--connect-timeout", "10"]) == 0
    out = capsys.readouterr().out
    assert "vehicle 1: mission" in out and "vehicle 2: mission" in out  # progress lines
    report = out[out.index("report:") :]
    assert report.count("mission complete, landed and disarmed") == 2
    assert "items reached 4/4" in report and "battery 100% →" in report
    assert "all 2 missions completed" in report


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fly_flies_a_loop_planned_by_borderwatch_plan(tmp_path, drones, capsys):
    vehicle = drones(1)
    route = _write(tmp_path, "route.plan", _plan(vehicle.homes[0]))
    out_plan = tmp_path / "loop.plan"
    site = SITES_DIR / "algeciras-port.geojson"
    args = ["plan", str(site), "--pattern", "loop", "--route", route, "--altitude", "25", "-o", str(out_plan), "-q"]
    assert main(args) == 0
    planned = read_plan(out_plan)
    assert len(planned.items) >= 4 and planned.fence_polygons and planned.rally
    code = main(["fly", str(out_plan), "--connect", vehicle.urls[0], "--timeout", "250", "-q"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"items reached {len(planned.items)}/{len(planned.items)}" in out
    assert "all 1 missions completed" in out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fly_exits_1_naming_the_vehicle_and_reason_when_one_mission_is_refused(tmp_path, drones, capsys):
    vehicles = drones(2, speed_factor=15)
    good = _write(tmp_path, "good.plan", _plan(vehicles.homes[0]))
    bad = _write(tmp_path, "bad.plan", _plan(vehicles.homes[1], outside=True))
    connect = [arg for url in vehicles.urls for arg in ("--connect", url)]
    assert main(["fly", good, bad, *connect, "--timeout", "250", "-q"]) == 1
    out = capsys.readouterr().out
    report = out.split("report:")[1]
    assert "vehicle 1 (" in report and "mission complete, landed and disarmed" in report
    assert "FAILED: 1 of 2 flights: fence_violation: vehicle 2: mission refused: " in report
    assert "Geofence violation for waypoint 3" in report  # the vehicle's own words
    assert "items reached 0/4, flight time 0m00s" in report  # never left the ground


def test_fly_exits_1_when_no_vehicle_answers(tmp_path, capsys):
    plan = _write(tmp_path, "p.plan", _plan((36.13, -5.44)))
    assert main(["fly", plan, "--connect", "udpin://127.0.0.1:9", "--connect-timeout", "1"]) == 1
    assert "vehicle 1: no autopilot heard on udpin://127.0.0.1:9 within 1 s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.plan"], "missing.plan: cannot read file"),
        (["{p}", "--connect", "udpin://127.0.0.1:1", "--connect", "udpin://:2"], "2 --connect URLs for 1 plans"),
        (["{empty}"], "has no mission items"),
        (["{p}", "--timeout", "0"], "--timeout must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    p = _write(tmp_path, "p.plan", _plan((36.13, -5.44)))
    empty = _write(tmp_path, "empty.plan", MissionPlan(items=(), home=Waypoint(36.13, -5.44, 10.0)))
    argv = ["fly", *(a.format(p=p, empty=empty) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err

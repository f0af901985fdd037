"""`borderwatch plan` as a user runs it: files written, one-line errors, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from groundstation.commands.cli import main
from groundstation.commands.progress import Progress
from missions.formats import load_site
from missions.formats.qgc_plan import read_plan
from missions.plan import Command
from sitl.testdata import QGC_DIR, SITES_DIR

ALGECIRAS = SITES_DIR / "algeciras-port.geojson"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "groundstation.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_plan_writes_every_output(tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            "plan",
            str(ALGECIRAS),
            "--pattern",
            "risk",
            "--drones",
            "2",
            "-o",
            str(out / "patrol.plan"),
            "--geojson",
            str(out / "patrol.geojson"),
            "--kml",
            str(out / "patrol.kml"),
            "--map",
            str(out / "map.html"),
            "--kpi",
            str(out / "kpi.json"),
            "-q",
        ]
    )
    assert code == 0
    for drone in (1, 2):
        plan = read_plan(out / f"patrol-{drone}.plan")
        commands = [item.command for item in plan.items]
        assert commands[0] == Command.NAV_TAKEOFF and commands[-1] == Command.NAV_RETURN_TO_LAUNCH
        assert commands.count(Command.NAV_WAYPOINT) > 3
        assert plan.fence_circles and plan.fence_polygons and plan.rally
    kpi = json.loads((out / "kpi.json").read_text())
    assert kpi["drones"] == 2 and kpi["pattern"] == "risk"
    assert {r["name"] for r in kpi["revisits"]} == {"Eastern anchorage", "Container quay"}
    routes = [
        f for f in json.loads((out / "patrol.geojson").read_text())["features"] if f["properties"]["role"] == "route"
    ]
    assert len(routes) == 2
    assert "<kml" in (out / "patrol.kml").read_text()
    assert (out / "map_files" / "leaflet" / "leaflet.js").exists()


def test_plan_round_trips_through_a_qgc_plan(tmp_path):
    assert main(["plan", str(ALGECIRAS), "--pattern", "perimeter", "-o", str(tmp_path / "p.plan"), "-q"]) == 0
    original = load_site(ALGECIRAS)
    again = load_site(tmp_path / "p.plan")
    assert again.keep_in_m.symmetric_difference(original.frame.to_local(original.operating_areas[0].shape_deg)).area < 1
    circles = [z for z in again.no_fly if z.is_circle]
    assert [c.radius_m for c in circles] == [150]
    assert len(again.no_fly) == len(original.no_fly)
    (launch,) = again.launch
    assert launch.shape_deg.distance(original.launch[0].shape_deg) < 1e-9
    # The flown route comes back as the site's route: the same patrol can be flown as a loop.
    assert len(again.route) > 3
    assert main(["plan", str(tmp_path / "p.plan"), "--pattern", "loop", "-o", str(tmp_path / "loop.plan"), "-q"]) == 0


def test_loop_pattern_takes_a_route_file(tmp_path):
    route = tmp_path / "route.geojson"
    coords = [[-5.437, 36.128], [-5.425, 36.128], [-5.428, 36.115], [-5.437, 36.118]]
    route.write_text(
        json.dumps({"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": coords}})
    )
    assert (
        main(["plan", str(ALGECIRAS), "--pattern", "loop", "--route", str(route), "-o", str(tmp_path / "l.plan"), "-q"])
        == 0
    )
    positions = read_plan(tmp_path / "l.plan").positions()
    for lon, lat in coords:
        assert any(abs(p.lat_deg - lat) < 1e-6 and abs(p.lon_deg - lon) < 1e-6 for p in positions)


def test_sortie_files_are_numbered_per_drone(tmp_path):
    args = ["plan", str(SITES_DIR / "kilindini-mombasa.geojson"), "--pattern", "risk", "--drones", "2"]
    assert main([*args, "--endurance", "30", "-o", str(tmp_path / "k.plan"), "-q"]) == 0
    names = sorted(p.name for p in tmp_path.glob("*.plan"))
    assert "k-1-s1.plan" in names and "k-2-s1.plan" in names and "k-1-s2.plan" in names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "missing.geojson"], "missing.geojson: no such file"),
        (["plan", str(ALGECIRAS), "--altitude", "150"], "above the site's altitude limit of 120 m"),
        (["plan", str(ALGECIRAS), "--drones", "0"], "--drones must be at least 1"),
        (["plan", str(ALGECIRAS), "--pattern", "zigzag"], "invalid choice: 'zigzag'"),
        (["plan", str(ALGECIRAS), "--side-overlap", "100"], "side overlap must be at least 0 % and below 100 %"),
        (["plan", str(ALGECIRAS), "--pattern", "loop"], "the loop pattern needs a route"),
        (["plan", str(QGC_DIR / "mavsdk-sample.plan")], "the site has no operating area"),
    ],
)
def test_user_errors_are_one_line_with_status_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("borderwatch: warning:")]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]
    assert "Traceback" not in result.stderr


def test_broken_file_names_itself(tmp_path):
    broken = tmp_path / "broken.kml"
    broken.write_text("<kml><Document><Placemark>")
    result = run_cli("plan", str(broken))
    assert result.returncode == 2
    assert str(broken) in result.stderr and "Traceback" not in result.stderr


def test_progress_is_shown_for_long_work_only():
    quick, slow = io.StringIO(), io.StringIO()
    Progress("quick", quick, after_s=60)(0.5)
    shown = Progress("slow", slow, after_s=0.0, every_s=0.0)
    shown(0.25)
    shown(1.0)
    shown.done()
    assert quick.getvalue() == ""
    assert "slow:  25 %" in slow.getvalue() and "slow: 100 %" in slow.getvalue() and "done in" in slow.getvalue()

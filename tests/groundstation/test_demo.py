"""`borderwatch demo` as a newcomer runs it: the whole patrol on the built-in simulator, headless,
then its outputs checked as an operator would: plans that are safe to fly, drones back on the
ground, alerts whose evidence verifies, a report that draws its map. Ctrl-C stops everything and
keeps what was recorded; bad input is one line naming what is wrong.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import shapely

from groundstation.cli import main
from groundstation.run_data import read_run
from missions.formats import BUNDLED_SITES, load_site
from missions.formats.qgc_plan import read_plan
from missions.plan import Command
from sitl.ports import free_port_block, udp_ports_free
from sitl.sim import ONBOARD_PORT_OFFSET

SITE = BUNDLED_SITES / "algeciras-port.geojson"
# 15× real time: the ~28-minute patrol takes about two minutes; vessels are still tracked at that pace.
SPEED = "15"


@pytest.mark.slow
def test_the_demo_flies_the_patrol_raises_alerts_with_evidence_and_reports(demo_process, chromium) -> None:
    demo = demo_process("--speed-factor", SPEED)
    started = time.monotonic()
    done = subprocess.run(demo.command, capture_output=True, text=True, timeout=420)
    elapsed = time.monotonic() - started
    out = done.stdout
    print(out[-4000:], done.stderr[-2000:])

    assert done.returncode == 0, done.stderr[-2000:]
    # Progress while it ran: status lines with every drone, and the sorties ending.
    assert len(re.findall(r"vehicle 1 \w+ item \d+/\d+ .* \| vehicle 2 ", out)) >= 5
    assert "vehicle 2: sortie 2/2: done" in out
    # The summary: distance flown, share seen, alerts by zone, evidence verified.
    assert re.search(r"vehicle 1: [1-9][\d.]* km flown", out) and re.search(r"vehicle 2: [1-9][\d.]* km flown", out)
    assert re.search(r"seen [\d.]+ km², [1-9][\d.]* % of the operating area", out)
    assert re.search(r"watch zone 'Eastern anchorage': \d+ % seen, .* \d+ alert\(s\)", out)
    assert "evidence: intact" in out

    run_dir = demo.only_run()
    run = read_run(run_dir)
    assert not run.warnings
    site = load_site(SITE)
    keep_in = site.keep_in_m
    for plan in run.plans:  # the plans flown, read back from QGroundControl's format, keep out of trouble
        flown = read_plan(plan.path)
        points = [site.frame.xy(w.lon_deg, w.lat_deg) for w in flown.positions()]
        assert len(points) >= 3, plan.path
        path = shapely.LineString(points)
        assert keep_in.covers(path), f"{plan.path}: leaves the operating area"
        assert not path.intersects(site.keep_out_m), f"{plan.path}: crosses a no-fly zone"
        assert flown.items[-1].command == Command.NAV_RETURN_TO_LAUNCH
        assert flown.fence_polygons and flown.fence_circles, f"{plan.path}: the site's fence travels with the plan"
    assert sorted((p.vehicle, p.sortie) for p in run.plans) == [(0, 1), (0, 2), (1, 1), (1, 2)]

    for vehicle in (0, 1):  # every drone ends on the ground, disarmed, after flying
        points = [p for p in run.telemetry if p.vehicle == vehicle]
        assert any(p.in_air for p in points)
        assert not points[-1].in_air and not points[-1].armed, points[-1]

    assert len(run.alerts) >= 1
    assert (
        run.evidence is not None and run.evidence.ok and run.evidence.records >= len({a.alert_id for a in run.alerts})
    )
    assert run.evidence.snapshots_verified == run.evidence.records
    assert run.evidence_last_sha256 == run.evidence_tail_sha256
    assert json.loads((run_dir / "run.json").read_text())["time_scale"] == float(SPEED)

    report = run_dir / "report" / "report.html"
    dom = chromium("--dump-dom", report.as_uri()).stdout
    assert "leaflet-container" in dom
    paths = [p for p in re.findall(r"<path\b[^>]*>", dom) if "leaflet-interactive" in p]
    assert sum("borderwatch-seen" in p for p in paths) >= 1
    assert sum('stroke="#111111"' in p for p in paths) >= 1  # alert markers
    for label in ("vehicle 1 flown", "vehicle 2 flown", "Eastern anchorage", "intact"):
        assert label in dom
    assert udp_ports_free(demo.ports) == [], "every port the demo used is free again"
    assert elapsed < 300, f"the demo took {elapsed:.0f} s"


@pytest.mark.slow
def test_ctrl_c_stops_everything_and_keeps_what_was_recorded(demo_process) -> None:
    demo = demo_process()

    returncode, out, err, children = demo.interrupt_when_flying()

    assert returncode == 130, err[-2000:]
    assert "interrupted" in out + err
    assert all(not Path(f"/proc/{pid}").exists() for pid in children), "no process the demo started is left"
    assert udp_ports_free(demo.ports) == [], "every port the demo used is free again"
    run = read_run(demo.only_run())
    assert run.ended is not None, "the run folder was closed"
    assert any(p.in_air for p in run.telemetry)
    assert run.evidence is None or run.evidence.ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "no/such/site.geojson"], "no/such/site.geojson: no such site file"),
        (["--drones", "0"], "--drones must be between 1 and 8, not 0"),
        (["--speed-factor", "0"], "--speed-factor must be between 1 and 50, not 0"),
        (["--model", "no/such/yolo11n.pt"], "--model no/such/yolo11n.pt: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys) -> None:
    assert main(["demo", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_site_without_watch_zones_is_refused_naming_it(tmp_path: Path, capsys) -> None:
    document = json.loads(SITE.read_text())
    document["features"] = [f for f in document["features"] if f["properties"]["role"] != "watch"]
    path = tmp_path / "no-watch.geojson"
    path.write_text(json.dumps(document))

    assert main(["demo", "--site", str(path), "--runs", str(tmp_path / "runs")]) == 2
    assert f"{path}: the site has no watch zones" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "nothing half-started"


def test_the_demo_moves_off_standard_ports_that_are_taken() -> None:
    import socket

    from groundstation.demo import choose_ports

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        base = free_port_block(2, also=ONBOARD_PORT_OFFSET)
        held.bind(("0.0.0.0", base + 1))
        ports = choose_ports(2, mavlink=base, video=free_port_block(4))

    assert ports.mavlink != base
    assert f"MAVLink port(s) {base + 1} are in use" in ports.note
    assert udp_ports_free([ports.mavlink, ports.mavlink + 1, ports.mavlink + ONBOARD_PORT_OFFSET]) == []

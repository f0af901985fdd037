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

from groundstation.commands.cli import main
from groundstation.runs.reader import read_run
from missions.formats import BUNDLED_SITES, load_site
from missions.formats.qgc_plan import read_plan
from missions.plan import Command
from sitl.ports import free_port_block, udp_ports_busy
from sitl.tak import TakReceiver
from sitl.vehicles.fleet import ONBOARD_PORT_OFFSET
from tests.groundstation.conftest import cot_received
from vision.cot.events import track_uid
from vision.detections import Detection

SITE = BUNDLED_SITES / "algeciras-port.geojson"
# The northern quays of the same port and sorties of 12 minutes: one sortie a drone, about 8 minutes
# of the drones' own time, which the simulation runs at up to 15× while detection keeps up.
SMALL_SITE = Path(__file__).resolve().parents[1] / "data" / "sites" / "algeciras-north.geojson"
SPEED = "15"
SHORT = ("--site", str(SMALL_SITE), "--endurance", "12", "--speed-factor", SPEED)


@pytest.mark.slow
def test_the_demo_flies_the_patrol_raises_alerts_with_evidence_and_reports(demo_process, chromium) -> None:
    demo = demo_process(*SHORT)
    started = time.monotonic()
    done = subprocess.run(demo.command, capture_output=True, text=True, timeout=420)
    elapsed = time.monotonic() - started
    out = done.stdout
    print(out[-4000:], done.stderr[-2000:])

    assert done.returncode == 0, done.stderr[-2000:]
    # Progress while it ran: status lines with every drone, and the sorties ending.
    assert len(re.findall(r"vehicle 1 \w+ item \d+/\d+ .* \| vehicle 2 ", out)) >= 5
    assert "vehicle 2: sortie 1/1: done" in out
    # The summary: distance flown, share seen, alerts by zone, evidence verified.
    assert re.search(r"vehicle 1: [1-9][\d.]* km flown", out) and re.search(r"vehicle 2: [1-9][\d.]* km flown", out)
    assert re.search(r"seen [\d.]+ km², [1-9][\d.]* % of the operating area", out)
    assert re.search(r"watch zone 'Eastern anchorage': \d+ % seen, .* \d+ alert\(s\)", out)
    assert "evidence: intact" in out

    run_dir = demo.only_run()
    run = read_run(run_dir)
    assert not run.warnings
    site = load_site(SMALL_SITE)
    keep_in = site.keep_in_m
    for plan in run.plans:  # the plans flown, read back from QGroundControl's format, keep out of trouble
        flown = read_plan(plan.path)
        points = [site.frame.xy(w.lon_deg, w.lat_deg) for w in flown.positions()]
        assert len(points) >= 3, plan.path
        path = shapely.LineString(points)
        assert keep_in.covers(path), f"{plan.path}: leaves the operating area"
        assert not path.intersects(site.keep_out_m), f"{plan.path}: crosses a no-fly zone"
        assert flown.items[-1].command == Command.NAV_RETURN_TO_LAUNCH
        # The site's fence travels with the plan: the operating area to stay in, the heliport to keep out of.
        assert sorted(p.inclusion for p in flown.fence_polygons) == [False, True], plan.path
    assert sorted((p.vehicle, p.sortie) for p in run.plans) == [(0, 1), (1, 1)]

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
    # Recorded on the simulation's own clock, which said how fast it might run.
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["time_scale"] == 1.0 and run_json["speed_factor"] == float(SPEED)
    assert "simulated at up to 15× real time" in out

    report = run_dir / "report" / "report.html"
    dom = chromium("--dump-dom", report.as_uri()).stdout
    assert "leaflet-container" in dom
    paths = [p for p in re.findall(r"<path\b[^>]*>", dom) if "leaflet-interactive" in p]
    assert sum("borderwatch-seen" in p for p in paths) >= 1
    assert sum('stroke="#111111"' in p for p in paths) >= 1  # alert markers
    for label in ("vehicle 1 flown", "vehicle 2 flown", "Eastern anchorage", "intact"):
        assert label in dom
    assert udp_ports_busy(demo.ports) == [], "every port the demo used is free again"
    assert elapsed < 360, f"the demo took {elapsed:.0f} s"


@pytest.mark.slow
def test_ctrl_c_stops_everything_and_keeps_what_was_recorded(demo_process) -> None:
    demo = demo_process()

    returncode, out, err, children = demo.interrupt_when_flying()

    assert returncode == 130, err[-2000:]
    assert "interrupted" in out + err
    assert all(not Path(f"/proc/{pid}").exists() for pid in children), "no process the demo started is left"
    assert udp_ports_busy(demo.ports) == [], "every port the demo used is free again"
    run = read_run(demo.only_run())
    assert run.ended is not None, "the run folder was closed"
    assert any(p.in_air for p in run.telemetry)
    assert run.evidence is None or run.evidence.ok


@pytest.mark.slow
def test_the_demo_with_ais_binds_the_vessels_it_sees_to_their_own_mmsi(demo_process) -> None:
    with TakReceiver.tcp() as tak:
        demo = demo_process(*SHORT, "--ais", "--cot", tak.url)
        done = subprocess.run(demo.command, capture_output=True, text=True, timeout=420)
        print(done.stdout[-3000:], done.stderr[-2000:])
        assert done.returncode == 0, done.stderr[-2000:]
        cot = cot_received(tak, done.stdout)
    assert re.search(r"AIS: \d+ vessel\(s\) broadcast to udp://127.0.0.1:\d+ \(1 dark, 1 spoofing\)", done.stdout)
    assert re.search(r"\| AIS live, \d+ vessel\(s\) \| \d+ alert\(s\)", done.stdout)  # in the status lines
    run_dir = demo.only_run()
    roles = {v["mmsi"]: v["role"] for v in json.loads((run_dir / "ais-truth.json").read_text())["vessels"]}
    run = read_run(run_dir)
    bound: dict[tuple[str, int], set[int]] = {}
    last_seen: dict[tuple[str, int], Detection] = {}
    for frame in run.detections:
        for d in frame.items:
            if d.track_id is not None:
                last_seen[(frame.source, d.track_id)] = d
            if d.mmsi is not None:
                bound.setdefault((frame.source, d.track_id), set()).add(d.mmsi)
                assert d.vessel_name is None or d.vessel_name.isupper()  # as AIS spells names
    # Tracks the cameras followed long enough are named by AIS: each by one MMSI, of a vessel that tells
    # the truth (a dark one says nothing, a spoofer is somewhere else).
    assert len(bound) >= 2, bound
    assert all(len(mmsis) == 1 for mmsis in bound.values()), bound
    assert {roles[m] for mmsis in bound.values() for m in mmsis} == {"normal"}
    assert run.evidence is not None and run.evidence.ok
    # The same picture on a TAK server: both drones from their telemetry (battery included) with their
    # cameras' views, the tracks (those AIS named with their name and MMSI), the alerts, the zones.
    assert re.search(r"CoT tcp://127.0.0.1:\d+: \d+ sent", done.stdout)
    by_uid: dict[str, list] = {}
    for r in cot:
        by_uid.setdefault(r.uid, []).append(r.event)
    for n in (1, 2):
        drone = by_uid[f"borderwatch.algeciras-north.drone-{n}"]
        assert drone[-1].find("detail/status").get("battery") is not None
        assert f"borderwatch.algeciras-north.drone-{n}.footprint" in by_uid
    # A track's marker names the vessel its track was bound to, never another. Updates go at most once a
    # second of the station's clock, each with the track as it is then, so a binding that the matcher
    # let go within that second (a second is 15 of the drones' at this speed) may never reach TAK; one
    # still held when the track ended does, in the event that ends it.
    named: dict[tuple[str, int], set[str]] = {}
    for (source, track_id), seen in last_seen.items():
        uid = track_uid("algeciras-north", source, track_id)
        names = {e.find("detail/borderwatch").get("mmsi") for e in by_uid.get(uid, ())} - {None}
        assert names <= {str(m) for m in bound.get((source, track_id), ())}, (uid, names)
        named[(source, track_id)] = names
        if seen.mmsi is not None and seen.is_located:
            assert names == {str(seen.mmsi)}, f"{uid} ended bound to {seen.mmsi}, TAK heard {names}"
    assert sum(1 for names in named.values() if names) >= 2, named
    assert any(".alert." in u for u in by_uid) and any(u.endswith("zone.Eastern-anchorage") for u in by_uid)
    assert len(cot) == sum(len(v) for v in by_uid.values()) and not tak.undecodable


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "no/such/site.geojson"], "no/such/site.geojson: no such site file"),
        (["--ais-scenario", "x.json"], "--ais-scenario x.json: add --ais"),
        (["--ais", "--onboard"], "--ais runs in the headless demo with detection on the ground for now"),
        (["--ais", "--ais-scenario", "no/such.json"], "--ais-scenario no/such.json: no such file"),
        (["--drones", "0"], "--drones must be between 1 and 8, not 0"),
        (["--speed-factor", "0"], "--speed-factor must be between 1 and 50, not 0"),
        (["--model", "no/such/yolo11n.pt"], "--model no/such/yolo11n.pt: no such file"),
        (["--endurance", "1"], "--endurance must be between 2 and 25 minutes (the simulated battery), not 1"),
        (["--px4", "no/such/px4"], "no/such/px4: no such folder (expected PX4-Autopilot's build/px4_sitl_default)"),
        (["--broker", "mqtts://127.0.0.1"], "--broker is for --onboard"),
        (["--onboard", "--broker", "mqtts://127.0.0.1"], "also give --pki DIR"),
        (["--onboard", "--broker", "tcp://127.0.0.1", "--pki", "x"], "expected mqtts://HOST:PORT"),
        (["--onboard", "--gui"], "--onboard runs headless for now"),
        (["--cot", "ftp://tak.example"], "ftp://tak.example: not a CoT destination"),
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

    from groundstation.demo.fleet import choose_ports

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        base = free_port_block(2, also=ONBOARD_PORT_OFFSET)
        held.bind(("0.0.0.0", base + 1))
        ports = choose_ports(2, mavlink=base, video=free_port_block(4))

    assert ports.mavlink != base
    assert f"MAVLink port(s) {base + 1} are in use" in ports.note
    assert udp_ports_busy([ports.mavlink, ports.mavlink + 1, ports.mavlink + ONBOARD_PORT_OFFSET]) == []


@pytest.mark.px4
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_demo_flies_real_px4_with_cameras_on_its_own_pose(demo_process) -> None:
    """`demo --px4`: the same patrol, run folder, alerts, evidence and report, flown by PX4 SIH."""
    demo = demo_process("--px4", "--site", str(SMALL_SITE), "--drones", "1", "--endurance", "12",
                        "--speed-factor", "4")  # fmt: skip
    done = subprocess.run(demo.command, capture_output=True, text=True, timeout=540)
    out = done.stdout
    print(out[-4000:], done.stderr[-2000:])

    assert done.returncode == 0, done.stderr[-2000:]
    assert "started 1 drone(s) on the PX4 SITL (SIH)" in out
    assert "vehicle 1: 1/1 sortie(s) flown, landed and disarmed" in out
    assert "evidence: intact" in out
    run_dir = demo.only_run()
    run = read_run(run_dir)
    points = run.telemetry
    assert any(p.in_air and p.rel_alt_m > 50 for p in points), "PX4 flew the patrol at its altitude"
    assert not points[-1].in_air and not points[-1].armed
    # The camera rode on PX4's vehicle: what it saw was placed on the map and raised alerts.
    assert run.alerts, "the camera on PX4's pose raised alerts"
    assert run.evidence is not None and run.evidence.ok
    assert (run_dir / "report" / "report.html").is_file()
    assert udp_ports_busy(demo.ports) == []

"""`borderwatch demo --onboard`: each drone's detector in an onboard process of its own that talks to
the ground only through the demo's broker; the run folder, summary and report say what the
ground demo's say, and each unit's evidence arrives as the same chain it keeps onboard."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from groundstation.runs.reader import read_run
from sitl.tak import TakReceiver
from tests.groundstation.conftest import cot_received
from vision.cot.events import slug
from vision.evidence_verify import verify

SMALL_SITE = Path(__file__).resolve().parents[1] / "data" / "sites" / "algeciras-north.geojson"
SHORT = ("--site", str(SMALL_SITE), "--endurance", "12", "--speed-factor", "15")


@pytest.mark.slow
def test_the_onboard_demo_gets_alerts_and_evidence_through_the_broker(demo_process) -> None:
    with TakReceiver.udp() as tak:
        demo = demo_process(*SHORT, "--onboard", "--cot", tak.url)
        done = subprocess.run(demo.command, capture_output=True, text=True, timeout=420)
        out = done.stdout
        print(out[-4000:], done.stderr[-2000:])
        assert done.returncode == 0, done.stderr[-2000:]
        cot = cot_received(tak, out, all_of_them=False)

    assert "publishing to the broker at mqtts://127.0.0.1:" in out
    # The status lines show each unit's frame rate as its status on the bus says it.
    assert re.search(r"unit-1 [1-9][\d.]* fps \| unit-2 [1-9][\d.]* fps", out)
    assert "vehicle 1: 1/1 sortie(s) flown, landed and disarmed" in out
    assert "vehicle 2: 1/1 sortie(s) flown, landed and disarmed" in out
    assert re.search(r"seen [\d.]+ km², [1-9][\d.]* % of the operating area", out)
    assert re.search(r"unit-1: intact, the same chain as onboard \([1-9]\d* record", out), out[-2000:]
    assert re.search(r"unit-2: intact, the same chain as onboard \(\d+ record", out)

    run = read_run(demo.only_run())
    assert len(run.alerts) >= 1 and len({a.alert_id for a in run.alerts}) == len(run.alerts)
    assert [u.name for u in run.onboard] == ["unit-1", "unit-2"]
    for unit in run.onboard:
        assert unit.report.ok and unit.tail_sha256 == unit.head_sha256
        assert unit.report.records == unit.head_seq
    # Every alert the station recorded has its snapshot, from the evidence the units sent.
    assert all(a.alert_id in run.snapshots for a in run.alerts)
    assert sum(u.report.records for u in run.onboard) >= len(run.alerts)
    assert run.frames, "the units' frame poses: what the report's coverage is drawn from"
    # Each copy verifies on its own, as `borderwatch evidence verify` would anywhere.
    for unit in run.onboard:
        assert verify(unit.directory).ok
    assert (demo.only_run() / "report" / "report.html").is_file()
    # TAK hears what the units publish through the station's bus: their tracks and alerts, each alert
    # again with a link to its snapshot in the station's copy of the unit's evidence; and both drones.
    uids = {r.uid for r in cot}
    assert {"borderwatch.algeciras-north.drone-1", "borderwatch.algeciras-north.drone-2"} <= uids
    assert any(".track-" in u for u in uids)
    markers = [r.event for r in cot if ".alert." in r.uid]
    assert {m.get("uid").rsplit(".alert.", 1)[1] for m in markers} >= {slug(a.alert_id) for a in run.alerts}
    linked = [link.get("url") for m in markers for link in m.iter("link") if link.get("url")]
    assert linked and all(Path(url.removeprefix("file://")).is_file() for url in linked)

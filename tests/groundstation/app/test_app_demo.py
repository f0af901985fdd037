"""`borderwatch demo --gui`: the same patrol as the headless demo, driven through the real window.

It runs as a user starts it, in its own process: the app opens the site, plans, connects to the
simulated drones, shows both cameras, flies every sortie, and when all are down writes the report
and prints the summary. The window as it stands at the end goes to out/screenshots/demo-gui.png.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from groundstation.run_data import read_run
from sitl.ports import free_port_block, udp_ports_free
from sitl.sim import ONBOARD_PORT_OFFSET

pytestmark = [pytest.mark.gui, pytest.mark.slow]

BORDERWATCH = Path(sys.executable).with_name("borderwatch")
SCREENSHOTS = Path(__file__).resolve().parents[3] / "out" / "screenshots"


def test_the_demo_runs_inside_the_app(tmp_path: Path) -> None:
    shot = SCREENSHOTS / "demo-gui.png"
    shot.unlink(missing_ok=True)
    command = [
        str(BORDERWATCH), "demo", "--gui", "--speed-factor", "15", "--runs", str(tmp_path / "runs"),
        "--settings", str(tmp_path / "settings.ini"), "--quit-after", "2", "--screenshot", str(shot),
        "--base-port", str(free_port_block(2, also=ONBOARD_PORT_OFFSET)), "--video-port", str(free_port_block(4)),
    ]  # fmt: skip

    done = subprocess.run(command, capture_output=True, text=True, timeout=480)
    out = done.stdout
    print(out[-3000:])

    assert done.returncode == 0, done.stderr[-3000:]
    assert "planned 4 sortie(s)" in out
    assert re.search(r"vehicle 1 \w+ item \d+/\d+ .* \| vehicle 2 ", out), "progress on the terminal"
    assert "vehicle 1: 2/2 sortie(s) flown, landed and disarmed" in out
    assert "vehicle 2: 2/2 sortie(s) flown, landed and disarmed" in out
    assert "evidence: intact" in out
    (run_dir,) = (p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    run = read_run(run_dir)
    assert run.alerts, "the cameras in the window raised alerts"
    assert run.evidence is not None and run.evidence.ok
    assert run.time_scale == 15.0
    assert {p.vehicle for p in run.plans} == {0, 1}
    assert (run_dir / "report" / "report.html").is_file()
    assert shot.is_file() and shot.stat().st_size > 50_000


def test_ctrl_c_closes_the_window_and_stops_everything(tmp_path: Path) -> None:
    base, video = free_port_block(2, also=ONBOARD_PORT_OFFSET), free_port_block(4)
    ports = [base, base + 1, base + ONBOARD_PORT_OFFSET, base + ONBOARD_PORT_OFFSET + 1, *range(video, video + 4)]
    command = [
        str(BORDERWATCH), "demo", "--gui", "--runs", str(tmp_path / "runs"), "--settings", str(tmp_path / "s.ini"),
        "--base-port", str(base), "--video-port", str(video),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        flying, deadline = False, time.monotonic() + 120
        while time.monotonic() < deadline and not flying:
            flying = bool(re.search(r"vehicle 1 mission item [1-9]", proc.stdout.readline()))
        assert flying, "the app never reported its drones flying"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 130, err[-3000:]
    assert "interrupted: everything the demo started is stopped" in out
    assert udp_ports_free(ports) == []
    (run_dir,) = (p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    run = read_run(run_dir)
    assert run.ended is not None, "the window closed the run folder"
    assert any(p.in_air for p in run.telemetry)

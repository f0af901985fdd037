"""`borderwatch demo --gui`: the same patrol as the headless demo, driven through the real window.

It runs as a user starts it, in its own process: the app opens the site, plans, connects to the
simulated drones, shows both cameras, flies every sortie, and when all are down writes the report
and prints the summary. The window as it stands at the end goes to out/screenshots/demo-gui.png.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from groundstation.runs.reader import read_run
from sitl.ports import udp_ports_busy

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "out" / "screenshots"
# The headless demo test's short patrol: the northern quays, one sortie of up to 12 minutes a drone.
SMALL_SITE = Path(__file__).resolve().parents[2] / "data" / "sites" / "algeciras-north.geojson"
SHORT = ("--site", str(SMALL_SITE), "--endurance", "12", "--speed-factor", "15")


def test_the_demo_runs_inside_the_app(demo_process, tmp_path: Path) -> None:
    shot = SCREENSHOTS / "demo-gui.png"
    shot.unlink(missing_ok=True)
    demo = demo_process("--gui", *SHORT, "--settings", str(tmp_path / "settings.ini"),
                        "--quit-after", "2", "--screenshot", str(shot))  # fmt: skip

    done = subprocess.run(demo.command, capture_output=True, text=True, timeout=480)
    out = done.stdout
    print(out[-3000:])

    assert done.returncode == 0, done.stderr[-3000:]
    assert "planned 2 sortie(s)" in out
    assert re.search(r"vehicle 1 \w+ item \d+/\d+ .* \| vehicle 2 ", out), "progress on the terminal"
    assert "vehicle 1: 1/1 sortie(s) flown, landed and disarmed" in out
    assert "vehicle 2: 1/1 sortie(s) flown, landed and disarmed" in out
    assert "evidence: intact" in out
    run_dir = demo.only_run()
    run = read_run(run_dir)
    assert run.alerts, "the cameras in the window raised alerts"
    assert run.evidence is not None and run.evidence.ok
    assert run.time_scale == 1.0 and run.speed_factor == 15.0  # recorded on the simulation's clock
    assert {p.vehicle for p in run.plans} == {0, 1}
    assert (run_dir / "report" / "report.html").is_file()
    assert shot.is_file() and shot.stat().st_size > 50_000


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_closes_the_window_and_stops_everything(demo_process, tmp_path: Path, sig) -> None:
    demo = demo_process("--gui", "--settings", str(tmp_path / "s.ini"))

    returncode, out, err, _children = demo.interrupt_when_flying(sig)

    assert returncode == 130, err[-3000:]
    assert "interrupted: everything the demo started is stopped" in out
    assert udp_ports_busy(demo.ports) == []
    run = read_run(demo.only_run())
    assert run.ended is not None, "the window closed the run folder"
    assert any(p.in_air for p in run.telemetry)


def test_drones_that_never_answer_end_the_demo_with_the_reason(window, qtbot, tmp_path: Path) -> None:
    from groundstation.app.demo_driver import DemoDriver, DemoSteps
    from groundstation.demo.console import Console
    from groundstation.demo.headless import DemoConfig, DemoResult
    from missions.formats import BUNDLED_SITES
    from sitl.ports import free_port_block

    lines: list[str] = []
    port = free_port_block(2)  # nobody sends there
    steps = DemoSteps(BUNDLED_SITES / "algeciras-port.geojson", DemoConfig(drones=2).patrol_request(),
                      (f"udpin://0.0.0.0:{port}", f"udpin://0.0.0.0:{port + 1}"), ())  # fmt: skip
    run = DemoResult(None)
    driver = DemoDriver(window, steps, Console(lines.append), run)

    with qtbot.waitSignal(driver.finished, timeout=90000):
        driver.start()

    assert run.problems and "cannot connect to the drones" in run.problems[0], run.problems
    assert not run.outcomes
    assert window.recorder is None, "the run folder was closed"
    assert (run.run_dir / "run.json").is_file() and read_run(run.run_dir).ended is not None

"""`borderwatch demo --gui`: the same demo inside the desktop app.

This module starts the simulated drones and cameras (as the headless demo does) and hands the
window's demo driver only where to connect and where the video comes from; the app itself
never imports the simulator. Closing the window, or Ctrl-C in the terminal, stops everything.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from groundstation.demo import (
    SIM_ENDURANCE_MIN,
    SIM_RESERVE_PCT,
    Console,
    DemoConfig,
    DemoResult,
    choose_ports,
    simulated_fleet,
    summary,
)
from groundstation.run_data import read_run
from groundstation.run_kpis import compute_run_kpis

EXIT_FAILED = 1
SIGNAL_POLL_MS = 200  # Qt's loop runs C++; a timer lets Python see Ctrl-C this often


def run_gui(
    config: DemoConfig, *, settings: str | None = None, quit_after_s: float | None = None, screenshot: str | None = None
) -> int:
    from missions.formats import load_site

    os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox" if os.geteuid() == 0 else "")
    console = Console(lambda line: print(line, flush=True))
    site = load_site(config.site)  # a bad file is one line on the terminal, before any window opens
    ports = choose_ports(config.drones, config.mavlink_port, config.video_port)
    if ports.note:
        console.say(ports.note)

    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from groundstation.app.demo_driver import DemoDriver, DemoSteps, stream_configs
    from groundstation.app.main_window import MainWindow
    from groundstation.app.settings import RUNS_DIR_KEY, app_settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("borderwatch")
    qsettings = app_settings(settings)
    qsettings.setValue(RUNS_DIR_KEY, str(config.runs_dir))
    started = time.monotonic()
    outcome: list = []
    with (
        tempfile.TemporaryDirectory(prefix="borderwatch-demo-") as sdp_dir,
        simulated_fleet(site, config.drones, config.speed_factor, Path(sdp_dir), ports, config.camera_fps) as sim,
    ):
        console.say(f"started {config.drones} simulated drone(s) at {config.speed_factor:g}× real time")
        window = MainWindow(qsettings, probe_online_tiles=True)
        window.show()
        steps = DemoSteps(
            site=config.site,
            drones=config.drones,
            altitude_m=config.altitude_m,
            endurance_min=SIM_ENDURANCE_MIN,
            reserve_pct=SIM_RESERVE_PCT,
            urls=sim.urls,
            streams=stream_configs(sim.sdp_paths, sim.pose_urls, config.model),
            time_scale=config.speed_factor,
        )
        driver = DemoDriver(window, steps, console)

        def finished(run) -> None:
            outcome.append(run)
            result = _result(run)
            print(summary(result, time.monotonic() - started), flush=True)
            if quit_after_s is not None:
                QTimer.singleShot(int(quit_after_s * 1000), lambda: _close(window, screenshot))
            else:
                console.say("close the window to end the demo")

        driver.finished.connect(finished)
        interrupted: list[bool] = []

        def on_interrupt(*_: object) -> None:
            # Raising here, as the terminal demo does, would raise inside a Qt slot and abort the process.
            interrupted.append(True)
            driver.stop()
            window.close()

        previous = {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        ticker = QTimer()
        ticker.timeout.connect(lambda: None)
        ticker.start(SIGNAL_POLL_MS)
        try:
            QTimer.singleShot(0, driver.start)
            app.exec()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            ticker.stop()
            driver.stop()
            window.close()  # stops the fleet link, the streams and the recording before the simulator goes
    if interrupted:
        if driver.run.run_dir is not None:
            kept = driver.run.run_dir
            console.say(f"interrupted: everything the demo started is stopped; what was recorded is kept in {kept} "
                        f"(borderwatch report {kept} writes its report)")  # fmt: skip
        raise KeyboardInterrupt
    if not outcome:
        print("demo: the window was closed before the patrol ended; what was recorded is kept", flush=True)
        return EXIT_FAILED
    return 0 if _result(outcome[0]).ok else EXIT_FAILED


def _close(window, screenshot: str | None) -> None:
    if screenshot:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(screenshot)
    window.close()


def _result(run) -> DemoResult:
    result = DemoResult(run.run_dir or Path("."), [o for o in run.outcomes if o is not None], report=run.report)
    result.problems = list(run.problems)
    if run.run_dir is not None and run.report is not None:
        result.kpis = compute_run_kpis(read_run(run.run_dir))
    return result

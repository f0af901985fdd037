"""`borderwatch demo --gui`: the same demo inside the desktop app.

This module starts the simulated drones and cameras (as the headless demo does) and hands the
app's demo driver only where to connect and where the video comes from; the app itself never
imports the simulator, and this module never touches Qt. Closing the window, or Ctrl-C in the
terminal, stops everything.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from groundstation.demo.console import Console
from groundstation.demo.fleet import choose_ports, simulated_fleet
from groundstation.demo.headless import DemoConfig, DemoResult, summary
from groundstation.runs.kpis import compute_run_kpis
from groundstation.runs.reader import read_run

EXIT_FAILED = 1


def run_gui(
    config: DemoConfig,
    *,
    settings: str | None = None,
    quit_after_s: float | None = None,
    screenshot: str | None = None,
    midway: tuple[float, str] | None = None,
) -> int:
    """The demo in the app. `quit_after_s` closes the window that long after the end, `screenshot`
    saving it first; `midway` (seconds, path) saves the window that long after the start."""
    from missions.formats import load_site

    console = Console(lambda line: print(line, flush=True))
    site = load_site(config.site)  # a bad file is one line on the terminal, before any window opens
    ports = choose_ports(config.drones, config.mavlink_port, config.video_port)
    if ports.note:
        console.say(ports.note)

    from groundstation.app.demo_driver import DemoSteps, stream_configs
    from groundstation.app.launch import WindowOptions, drive_demo

    options = WindowOptions(
        settings=settings,
        runs_dir=str(config.runs_dir),
        quit_after_s=quit_after_s,
        screenshot=screenshot,
        midway=midway,
        cot_urls=config.cot_urls or None,  # without --cot, the app's own TAK setting
    )
    started = time.monotonic()
    result = DemoResult(None)
    with (
        tempfile.TemporaryDirectory(prefix="borderwatch-demo-") as sdp_dir,
        simulated_fleet(site, config.drones, config.speed_factor, Path(sdp_dir), ports, config.camera_fps) as sim,
    ):
        console.say(f"started {config.drones} simulated drone(s) at up to {config.speed_factor:g}× real time")
        steps = DemoSteps(
            site=config.site,
            request=config.patrol_request(),
            urls=sim.urls,
            streams=stream_configs(sim.sdp_paths, sim.pose_urls, config.model),
            speed_factor=config.speed_factor,
            clocks=sim.clocks,
            run_clock=sim.run_clock,
        )

        def finished() -> None:
            if result.run_dir is not None and result.report is not None:
                result.kpis = compute_run_kpis(read_run(result.run_dir))
            print(summary(result, time.monotonic() - started), flush=True)

        try:
            ended = drive_demo(options, steps, console, result, finished)
        except KeyboardInterrupt:
            if result.run_dir is not None:
                kept = result.run_dir
                console.say(f"interrupted: everything the demo started is stopped; what was recorded is kept in "
                            f"{kept} (borderwatch report {kept} writes its report)")  # fmt: skip
            raise
    if not ended:
        print("demo: the window was closed before the patrol ended; what was recorded is kept", flush=True)
        return EXIT_FAILED
    return 0 if result.ok else EXIT_FAILED

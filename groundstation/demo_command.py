"""`borderwatch demo`: plan, fly, watch and report a whole patrol on the built-in simulator."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

EXIT_FAILED = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    from groundstation.demo import DEFAULT_SITE

    p = commands.add_parser(
        "demo",
        help="the whole patrol on this machine: plan, simulated drones with cameras, fly, detect, report",
        description=(
            "Plan a risk-weighted patrol of a site, start simulated drones with synthetic cameras at its "
            "launch point, fly every plan through MAVSDK, run detection on every camera, raise alerts "
            "with evidence, and write a run folder with its report. Ctrl-C stops everything it started."
        ),
    )
    p.add_argument("--site", default=str(DEFAULT_SITE), metavar="SITE",
                   help="site file (default: the bundled port of Algeciras)")  # fmt: skip
    p.add_argument("--drones", type=int, default=2, metavar="N", help="number of drones (2)")
    p.add_argument("--speed-factor", type=float, default=10.0, metavar="K",
                   help="simulate K times faster than real time (10: about 3 minutes)")  # fmt: skip
    p.add_argument("--gui", action="store_true", help="run it in the desktop app, with the map, video and alerts")
    p.add_argument("--model", metavar="MODEL", help="detector: .onnx or ultralytics .pt (default: the bundled one)")
    p.add_argument("--runs", default="out/runs", metavar="DIR", help="where the run folder goes (out/runs)")
    p.add_argument("--altitude", type=float, default=60.0, metavar="M", help="patrol altitude (60)")
    p.add_argument("--camera-fps", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--base-port", type=int, default=14540, help=argparse.SUPPRESS)
    p.add_argument("--video-port", type=int, default=5600, help=argparse.SUPPRESS)
    p.add_argument("--settings", metavar="FILE.ini", help=argparse.SUPPRESS)  # --gui: a settings file, for tests
    p.add_argument("--quit-after", type=float, metavar="S", help=argparse.SUPPRESS)  # --gui: close S s after the end
    p.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)  # --gui: the window at the end
    p.set_defaults(run=run)


def _config(args: argparse.Namespace):
    from groundstation.demo import DemoConfig
    from missions.errors import UserError

    if not Path(args.site).is_file():
        raise UserError(f"{args.site}: no such site file")
    return DemoConfig(
        site=Path(args.site),
        drones=args.drones,
        speed_factor=args.speed_factor,
        altitude_m=args.altitude,
        runs_dir=Path(args.runs),
        model=args.model,
        camera_fps=args.camera_fps,
        mavlink_port=args.base_port,
        video_port=args.video_port,
    )


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    # SIGTERM stops the demo as Ctrl-C does: every thread and socket it started is closed on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.gui:
            from groundstation.demo_gui import run_gui

            return run_gui(config, settings=args.settings, quit_after_s=args.quit_after, screenshot=args.screenshot)
        return _run_headless(config)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run_headless(config) -> int:
    from groundstation.demo import run_headless, summary

    started = time.monotonic()
    try:
        result = run_headless(config, write=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("demo: interrupted; every simulated drone, camera and stream is stopped", file=sys.stderr, flush=True)
        raise
    print(summary(result, time.monotonic() - started), flush=True)
    return 0 if result.ok else EXIT_FAILED

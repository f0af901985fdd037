"""`borderwatch demo`: plan, fly, watch and report a whole patrol on the built-in simulator or PX4 SITL."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from vision.cot.model import COT_HELP, DEFAULT_COT_URL

EXIT_FAILED = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    from groundstation.demo.headless import DEFAULT_SITE

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
                   help="simulate up to K times faster than real time (10); the built-in simulator slows "
                        "down when detection cannot keep up with the cameras")  # fmt: skip
    p.add_argument("--px4", nargs="?", const="", metavar="DIR",
                   help="fly real PX4 SITL (SIH) instead of the built-in simulator: a build folder, "
                        "else $PX4_DIR, else ../shared/px4 (see the README for the speed factor)")  # fmt: skip
    p.add_argument("--onboard", action="store_true",
                   help="detect onboard: one `borderwatch onboard` process per drone, talking to the ground "
                        "only through the event bus (a mosquitto of the demo's own unless --broker)")  # fmt: skip
    p.add_argument("--broker", metavar="URL", help="with --onboard: the agency's broker, mqtts://HOST:PORT")
    p.add_argument("--pki", metavar="DIR", help="with --broker: the folder of certificates `borderwatch pki` made")
    p.add_argument("--tsa", metavar="URL",
                   help="an RFC 3161 TSA that timestamps each signed head of the evidence")  # fmt: skip
    p.add_argument("--ais", action="store_true",
                   help="the world's vessels broadcast AIS (one dark, one spoofing, unless --ais-scenario) "
                        "and the station matches it to what it sees: dark vessels, lying positions")  # fmt: skip
    p.add_argument("--ais-scenario", metavar="FILE", help="with --ais: who is dark and who lies (see borderwatch sim)")
    p.add_argument("--cot", metavar="URL", action="append", nargs="?", const=DEFAULT_COT_URL, help=COT_HELP)
    p.add_argument("--gui", action="store_true", help="run it in the desktop app, with the map, video and alerts")
    p.add_argument("--model", metavar="MODEL", help="detector: .onnx or ultralytics .pt (default: the bundled one)")
    p.add_argument("--runs", default="out/runs", metavar="DIR", help="where the run folder goes (out/runs)")
    p.add_argument("--altitude", type=float, default=60.0, metavar="M", help="patrol altitude (60)")
    p.add_argument("--endurance", type=float, default=25.0, metavar="MIN",
                   help="plan sorties of at most MIN minutes of flight (25, the simulated battery): "
                        "fewer laps, a shorter demo")  # fmt: skip
    p.add_argument("--camera-fps", type=float, default=None, metavar="FPS",
                   help="camera frames per second of the drones' own time (2)")  # fmt: skip
    p.add_argument("--base-port", type=int, default=14540, help=argparse.SUPPRESS)
    p.add_argument("--video-port", type=int, default=5600, help=argparse.SUPPRESS)
    p.add_argument("--settings", metavar="FILE.ini", help=argparse.SUPPRESS)  # --gui: a settings file, for tests
    p.add_argument("--quit-after", type=float, metavar="S", help=argparse.SUPPRESS)  # --gui: close S s after the end
    p.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)  # --gui: the window at the end
    p.add_argument("--midway", nargs=2, metavar=("S", "PNG"), help=argparse.SUPPRESS)  # --gui: the window at S s
    p.set_defaults(run=run)


def _config(args: argparse.Namespace):
    from groundstation.demo.fleet import CAMERA_FPS
    from groundstation.demo.headless import DemoConfig
    from missions.errors import UserError

    if not Path(args.site).is_file():
        raise UserError(f"{args.site}: no such site file")
    px4 = None
    if args.px4 is not None:
        from sitl.px4_sitl.launcher import resolve_build_dir

        px4 = resolve_build_dir(args.px4 or None)
        if args.gui:
            raise UserError("--px4 runs headless for now: the app's demo flies the built-in simulator")
    if args.onboard and args.gui:
        raise UserError("--onboard runs headless for now: the app's demo detects on the ground")
    if args.ais_scenario and not args.ais:
        raise UserError(f"--ais-scenario {args.ais_scenario}: add --ais, which makes the vessels broadcast")
    if args.ais and (args.onboard or args.gui):
        raise UserError("--ais runs in the headless demo with detection on the ground for now (not --onboard, --gui)")
    return DemoConfig(
        site=Path(args.site),
        drones=args.drones,
        speed_factor=args.speed_factor,
        altitude_m=args.altitude,
        runs_dir=Path(args.runs),
        model=args.model,
        camera_fps=CAMERA_FPS if args.camera_fps is None else args.camera_fps,
        mavlink_port=args.base_port,
        video_port=args.video_port,
        px4=px4,
        endurance_min=args.endurance,
        onboard=args.onboard,
        tsa_url=args.tsa,
        ais=args.ais,
        ais_scenario=None if args.ais_scenario is None else Path(args.ais_scenario),
        broker_url=args.broker,
        pki_dir=None if args.pki is None else Path(args.pki),
        cot_urls=tuple(args.cot or ()),
    )


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    # SIGTERM stops the demo as Ctrl-C does: every thread and socket it started is closed on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.gui:
            from groundstation.demo.gui import run_gui

            midway = None if args.midway is None else (float(args.midway[0]), args.midway[1])
            return run_gui(
                config, settings=args.settings, quit_after_s=args.quit_after, screenshot=args.screenshot, midway=midway
            )
        return _run_headless(config)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run_headless(config) -> int:
    from groundstation.demo.fleet import DemoStartError
    from groundstation.demo.headless import run_headless, summary

    started = time.monotonic()
    try:
        result = run_headless(config, write=lambda line: print(line, flush=True))
    except DemoStartError as exc:
        print(f"borderwatch: demo: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("demo: interrupted; every simulated drone, camera and stream is stopped", file=sys.stderr, flush=True)
        raise
    print(summary(result, time.monotonic() - started), flush=True)
    return 0 if result.ok else EXIT_FAILED

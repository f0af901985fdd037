"""`borderwatch onboard`: the detector on a companion computer, headless.

Reads the camera, reads the vehicle's pose over MAVLink (pymavlink), detects, tracks,
geolocates and raises alerts, and sends detections and alerts to the ground station as
JSON datagrams. Needs neither Qt nor torch: ONNX Runtime runs the model. Also runs as
`python -m vision.onboard`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from missions.errors import UserError
from vision.runner import RunOptions, parse_host_port, run

DEFAULT_GROUND = "127.0.0.1:14650"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mavlink", required=True, metavar="URL",
                   help="the autopilot's MAVLink stream, as pymavlink names it (e.g. udpin:0.0.0.0:14540)")  # fmt: skip
    p.add_argument("--source", required=True, metavar="URL", help="camera: SDP file, udp://HOST:PORT, rtsp://, file")
    p.add_argument("--model", metavar="PATH", help="ONNX model (default: the bundled synthetic-world model)")
    p.add_argument("--site", metavar="SITE", help="site file whose watch zones raise alerts")
    p.add_argument("--ground", default=DEFAULT_GROUND, metavar="HOST:PORT",
                   help=f"ground station to send detections and alerts to (default {DEFAULT_GROUND})")  # fmt: skip
    p.add_argument("--evidence", metavar="DIR", help="keep a tamper-evident evidence log here")
    p.add_argument("--alerts", metavar="FILE", help="append alerts to this JSON-lines file")
    p.add_argument("--tile", action="store_true", help="tiled inference for small objects")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--ground-amsl", type=float, default=0.0, metavar="M",
                   help="height of the sea/ground plane above mean sea level (default 0)")  # fmt: skip
    p.add_argument("--hfov", type=float, default=80.0, metavar="DEG", help="camera horizontal field of view")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")


def options_from(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        source=args.source,
        model=args.model,
        backend="onnx",
        conf=args.conf,
        tile=args.tile,
        site=args.site,
        pose_url=args.mavlink,
        ground_amsl_m=args.ground_amsl,
        evidence_dir=args.evidence,
        alerts_file=args.alerts,
        udp=parse_host_port(args.ground, "--ground"),
        hfov_deg=args.hfov,
        max_frames=args.max_frames,
    )


def run_onboard(args: argparse.Namespace) -> int:
    options = options_from(args)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    try:
        stats = run(options, stop=stop)
    except KeyboardInterrupt:
        stats = None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stats is not None:
        elapsed = time.monotonic() - started
        print(
            f"onboard: {stats.frames} frames in {elapsed:.0f} s, {stats.detections} detections, "
            f"{stats.alerts} alerts, {stats.evidence_records} evidence records"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision.onboard", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_onboard(args)
    except UserError as exc:
        print(f"onboard: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

"""`borderwatch detect` and `borderwatch onboard`: run the video pipeline from the command line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from vision.cot.model import COT_HELP, DEFAULT_COT_URL


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "detect",
        help="detect, track, locate and alert on a video stream or file",
        description=(
            "Run the detection pipeline on a video source: an SDP file, udp://HOST:PORT or rtp://HOST:PORT "
            "(H.264 over RTP), rtsp://…, a video file or a folder of images. With --site and --pose, "
            "detections are placed on the map and watch-zone rules raise alerts."
        ),
    )
    p.add_argument("--source", required=True, metavar="URL|FILE", help="where the frames come from")
    p.add_argument("--model", metavar="PATH", help=".onnx or .pt model (default: the bundled synthetic-world model)")
    p.add_argument("--backend", choices=("auto", "onnx", "ultralytics"), default="auto",
                   help="auto: .onnx on ONNX Runtime, .pt on ultralytics")  # fmt: skip
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--site", metavar="SITE", help="site file (GeoJSON, KML, .plan) whose watch zones raise alerts")
    p.add_argument("--pose", metavar="MAVLINK_URL",
                   help="the drone's MAVLink stream for the camera pose, e.g. udpin:0.0.0.0:14550")  # fmt: skip
    p.add_argument("--ground-amsl", type=float, default=0.0, metavar="M",
                   help="height of the sea/ground plane above mean sea level (default 0)")  # fmt: skip
    p.add_argument("--hfov", type=float, default=80.0, metavar="DEG", help="camera horizontal field of view")
    p.add_argument("--evidence", metavar="DIR", help="keep a signed, tamper-evident evidence log of alerts here")
    p.add_argument("--key", metavar="FILE", help="the signing key (default: this station's, made on first use)")
    p.add_argument("--tsa", metavar="URL", help="an RFC 3161 TSA that timestamps each signed head of the evidence")
    p.add_argument("--ais", metavar="URL", help="an AIS feed (udp://HOST:PORT, tcp://HOST:PORT or a .nmea log): "
                   "dark vessels and lying positions are alerted (needs --site and --pose)")  # fmt: skip
    p.add_argument("--cot", metavar="URL", action="append", nargs="?", const=DEFAULT_COT_URL,
                   help=COT_HELP)  # fmt: skip
    p.add_argument("--alerts", metavar="FILE", help="append alerts to this JSON-lines file")
    p.add_argument("--udp", metavar="HOST:PORT", help="also send alerts and detections as JSON datagrams here")
    p.add_argument("--tile", action="store_true", help="tiled inference, for small vessels seen from altitude")
    p.add_argument("--show", action="store_true", help="show the video with boxes, classes and track ids")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--frames", action="store_true", help="print one line per frame")
    p.set_defaults(run=run_detect)

    o = commands.add_parser(
        "onboard",
        help="headless detector for a companion computer (no Qt, no torch)",
        description=(
            "Run on the drone's companion computer: read the camera and the vehicle's pose over MAVLink, "
            "detect with ONNX Runtime, and send detections and alerts to the ground station over UDP."
        ),
    )
    from vision import onboard

    onboard.add_arguments(o)
    o.set_defaults(run=onboard.run_onboard)


def run_detect(args: argparse.Namespace) -> int:
    from vision.runner import RunOptions, describe, parse_host_port, run

    if args.pose and not args.site:
        print("borderwatch: warning: --pose without --site: detections are not placed on a map", file=sys.stderr)
    options = RunOptions(
        source=args.source,
        model=args.model,
        backend=args.backend,
        conf=args.conf,
        tile=args.tile,
        pose_url=args.pose,
        ground_amsl_m=args.ground_amsl,
        evidence_dir=args.evidence,
        signing_key=args.key,
        tsa_url=args.tsa,
        ais_url=args.ais,
        cot_urls=tuple(args.cot or ()),
        alerts_file=args.alerts,
        udp=parse_host_port(args.udp) if args.udp else None,
        hfov_deg=args.hfov,
        max_frames=args.max_frames,
    )
    site = None
    if args.site:
        from missions.formats import load_site

        site = load_site(args.site)
    stop = threading.Event()
    started = time.monotonic()
    last_line = [started]

    def on_result(result, frame) -> None:
        now = time.monotonic()
        if args.frames or now - last_line[0] >= 5.0:
            print(describe(result), flush=True)
            last_line[0] = now

    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    interrupted = False
    try:
        if args.show:
            from groundstation.app.video_window import run_with_window

            stats = run_with_window(
                lambda callback: run(options, site, stop=stop, on_result=_both(on_result, callback)), stop,
                title=f"borderwatch detect: {args.source}",
            )  # fmt: skip
        else:
            stats = run(options, site, stop=stop, on_result=on_result)
    except KeyboardInterrupt:
        interrupted = True
        stats = None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stats is not None:
        elapsed = max(time.monotonic() - started, 1e-9)
        line = (
            f"detect: {stats.frames} frames in {elapsed:.1f} s ({stats.frames / elapsed:.1f} fps), "
            f"{stats.detections} detections, {stats.alerts} alerts"
        )
        if args.evidence:
            line += f", {stats.evidence_records} evidence records in {args.evidence}"
        if stats.frames:
            line += (
                f"; detect p50 {stats.percentile_ms(stats.detect_s, 50):.0f} ms, "
                f"latency p50 {stats.percentile_ms(stats.latencies_s, 50):.0f} ms"
            )
        print(line)
    return 130 if interrupted else 0


def _both(first, second):
    def call(result, frame) -> None:
        first(result, frame)
        second(result, frame)

    return call

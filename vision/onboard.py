"""`borderwatch onboard`: the detector on a companion computer, headless.

Reads the camera, reads the vehicle's pose over MAVLink (pymavlink), detects, tracks,
geolocates and raises alerts, and publishes them on the event bus (``--broker``, MQTT over
TLS with the unit's certificate): alerts and evidence from an on-disk outbox that survives
link outages and restarts, tracks, detections and the unit's status. Needs neither Qt nor
torch: ONNX Runtime runs the model. Also runs as `python -m vision.onboard`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from missions.errors import UserError
from vision.bus.address import credentials_in, parse_broker_url
from vision.bus.topics import parse_unit_identity
from vision.cot.model import COT_HELP, DEFAULT_COT_URL
from vision.runner import BusOptions, RunOptions, parse_host_port, run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mavlink", required=True, metavar="URL",
                   help="the autopilot's MAVLink stream, as pymavlink names it (e.g. udpin:0.0.0.0:14540)")  # fmt: skip
    p.add_argument("--source", required=True, metavar="URL", help="camera: SDP file, udp://HOST:PORT, rtsp://, file")
    p.add_argument("--model", metavar="PATH", help="ONNX model (default: the bundled synthetic-world model)")
    p.add_argument("--site", metavar="SITE", help="site file whose watch zones raise alerts")
    p.add_argument("--broker", metavar="URL", help="the event bus's broker, mqtts://HOST:PORT")
    p.add_argument("--pki", metavar="DIR",
                   help="folder with ca.crt and clients/<unit>.crt and .key (`borderwatch pki` writes it)")  # fmt: skip
    p.add_argument("--unit", metavar="IDENTITY", help="who this unit is on the bus: unit-<site>-<n>")
    p.add_argument("--outbox", metavar="FILE",
                   help="the on-disk outbox of what the broker has not yet taken (default: <unit>.outbox in "
                        "the evidence folder's parent, else in the current folder)")  # fmt: skip
    p.add_argument("--ground", metavar="HOST:PORT", help="also send detections and alerts as UDP JSON datagrams here")
    p.add_argument("--evidence", metavar="DIR", help="keep a signed, tamper-evident evidence log here")
    p.add_argument("--tsa", metavar="URL", help="an RFC 3161 TSA that timestamps each signed head of the evidence")
    p.add_argument("--ais", metavar="URL", help="an AIS feed (udp://HOST:PORT, tcp://HOST:PORT or a .nmea log): "
                   "dark vessels and lying positions are alerted (needs --site and --mavlink)")  # fmt: skip
    p.add_argument("--cot", metavar="URL", action="append", nargs="?", const=DEFAULT_COT_URL,
                   help=COT_HELP)  # fmt: skip
    p.add_argument("--key", metavar="FILE",
                   help="this unit's signing key (default $BORDERWATCH_KEY or ~/.config/borderwatch/keys/signing.key, "
                        "made on first use)")  # fmt: skip
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
        pose_url=args.mavlink,
        ground_amsl_m=args.ground_amsl,
        evidence_dir=args.evidence,
        alerts_file=args.alerts,
        udp=parse_host_port(args.ground, "--ground") if args.ground else None,
        bus=bus_options(args),
        signing_key=args.key,
        tsa_url=args.tsa,
        ais_url=args.ais,
        cot_urls=tuple(args.cot or ()),
        cot_drone=parse_unit_identity(args.unit)[1] if args.unit else 1,
        hfov_deg=args.hfov,
        max_frames=args.max_frames,
    )


def bus_options(args: argparse.Namespace) -> BusOptions | None:
    given = {name: getattr(args, name) for name in ("broker", "pki", "unit")}
    if not any(given.values()):
        return None
    missing = [f"--{name}" for name, value in given.items() if not value]
    if missing:
        raise UserError(f"the bus needs --broker, --pki and --unit; {', '.join(missing)} missing")
    try:
        parse_unit_identity(args.unit)
    except ValueError as exc:
        raise UserError(f"--unit: {exc}") from None
    if args.outbox:
        outbox = Path(args.outbox)
    else:
        outbox = (Path(args.evidence).resolve().parent if args.evidence else Path.cwd()) / f"{args.unit}.outbox"
    return BusOptions(
        broker=parse_broker_url(args.broker),
        credentials=credentials_in(args.pki, args.unit),
        identity=args.unit,
        outbox=outbox,
    )


def run_onboard(args: argparse.Namespace) -> int:
    options = options_from(args)
    site = None
    if args.site:
        from missions.formats import load_site  # the one site file the companion computer is given

        site = load_site(args.site)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    try:
        stats = run(options, site, stop=stop)
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

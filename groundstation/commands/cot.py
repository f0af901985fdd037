"""`borderwatch cot`: a gateway from the event bus to TAK, for agencies whose screens are ATAK or WinTAK."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from missions.errors import UserError
from vision.cot.model import COT_HELP, DEFAULT_COT_URL


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "cot",
        help="gateway: read a site's event bus and send its drones, tracks, alerts and zones to TAK",
        description="Connect to the event bus as the site's station (or headquarters), on a connection of its "
        "own, and send what the units publish to TAK as Cursor on Target: each unit's drone and camera view "
        "(from the poses its detections carry), each track as it starts, moves and ends, each alert as a marker "
        "linking its snapshot, and the site's watch and no-fly zones once a minute.",
    )
    p.add_argument("--broker", required=True, metavar="URL", help="the event bus's broker, mqtts://HOST:PORT")
    p.add_argument("--pki", required=True, metavar="DIR", help="folder with ca.crt and clients/<identity>.crt/.key")
    p.add_argument("--site", required=True, metavar="SITE", help="site file: its zones, and its frame for the views")
    p.add_argument("--bus-site", metavar="NAME", help="the site's name on the bus (default: from the site's name)")
    p.add_argument("--as", dest="identity", choices=("station", "hq"), default="station",
                   help="whose certificate to connect with (default: the site's station)")  # fmt: skip
    p.add_argument("--cot", metavar="URL", action="append", nargs="?", const=DEFAULT_COT_URL, help=COT_HELP)
    p.add_argument("--evidence", metavar="DIR",
                   help="keep each unit's evidence copy here, so alert markers can link their snapshots")  # fmt: skip
    p.add_argument("--snapshots-url", metavar="URL",
                   help="link snapshots under this URL (an evidence server) instead of as file:// paths")  # fmt: skip
    p.add_argument("--hfov", type=float, default=80.0, metavar="DEG", help="the units' camera field of view (80)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from groundstation.link import identity as ids
    from groundstation.link.cot import BusToCot, Ticker
    from groundstation.link.pki import client_credentials
    from groundstation.link.receiver import Endpoint, Receiver
    from groundstation.link.station import bus_site
    from missions.formats import load_site
    from vision.bus.address import parse_broker_url
    from vision.camera import Intrinsics
    from vision.cot.link import open_cot

    if args.duration is not None and not args.duration > 0:
        raise UserError(f"--duration must be positive, not {args.duration:g}")
    site = load_site(args.site)
    name = ids.check_site(args.bus_site) if args.bus_site else bus_site(site.name)
    address = parse_broker_url(args.broker)
    if not Path(args.pki).is_dir():
        raise UserError(f"--pki {args.pki}: no such folder")
    who = ids.station(name) if args.identity == "station" else ids.hq()
    creds = client_credentials(Path(args.pki), who)
    if not creds.cert.exists():
        raise UserError(f"--pki {args.pki}: no certificate for {who.name} (`borderwatch pki issue` makes one)")

    def say(line: str) -> None:
        print(f"borderwatch: {line}", flush=True)

    link = open_cot(args.cot or [DEFAULT_COT_URL], name, site.zones, say=say)
    bridge = BusToCot(link.feed, site_frame=site.frame, intrinsics=Intrinsics(hfov_deg=args.hfov),
                      evidence_dir=args.evidence, snapshots_url=args.snapshots_url)  # fmt: skip
    # A connection of its own (its own client id): the station's receiver keeps its session.
    receiver = Receiver(Endpoint(address.host, address.port, creds.ca, creds.cert, creds.key), name,
                        client_id=f"{who.name}-cot", evidence_dir=args.evidence,
                        handlers=bridge.handlers(_problems(say)))  # fmt: skip
    ticker = Ticker(link.feed).start()
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver.start()
    say(f"CoT gateway: {address.url} as {who.name} → {', '.join(link.sender.stats())}")
    started = time.monotonic()
    try:
        while not stop.wait(0.2):
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        receiver.close()
        ticker.close()
        link.close()
    print(f"{link.summary()}; {receiver.counters.received} bus message(s) read")
    return 0


def _problems(say):
    from groundstation.link.receiver import Handlers

    return Handlers(problem=say)

"""`borderwatch gui`: the operator's desktop app, optionally opened on a site, a fleet and video streams."""

from __future__ import annotations

import argparse
from pathlib import Path

from missions.errors import UserError
from vision.cot.model import COT_HELP, DEFAULT_COT_URL


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "gui",
        help="the desktop app: site, planner, fleet, video, alerts and reports in one window",
        description="Open the ground station's window. Everything can also be done from its menus and panels; "
        "the options open a site, connect a fleet and add video streams at start.",
    )
    p.add_argument("site", nargs="?", metavar="SITE", help="site to open: .geojson, .kml or .plan")
    p.add_argument("--connect", action="extend", nargs="+", default=[], metavar="URL",
                   help="connect to these vehicles at start (e.g. udpin://0.0.0.0:14540)")  # fmt: skip
    p.add_argument("--video", action="extend", nargs="+", default=[], metavar="SOURCE",
                   help="video stream of vehicle i: an SDP file, udp://, rtsp:// or a video file")  # fmt: skip
    p.add_argument("--pose", action="extend", nargs="+", default=[], metavar="URL",
                   help="MAVLink pose of the i-th video's camera (e.g. udpin://0.0.0.0:14580)")  # fmt: skip
    p.add_argument("--model", metavar="MODEL", help="detector for the video: .onnx or .pt (the bundled model)")
    p.add_argument("--tiles", metavar="TILES",
                   help="map background: an .mbtiles file, a {z}/{x}/{y} tile folder, or a URL template; "
                        "by default online tiles when the network answers, else a plain background")  # fmt: skip
    p.add_argument("--runs", metavar="DIR", help="where run folders are recorded (out/runs)")
    p.add_argument("--run", metavar="RUN_DIR", dest="open_run",
                   help="open a recorded run: its alerts as the verified evidence says them")  # fmt: skip
    p.add_argument("--broker", metavar="URL",
                   help="the event bus onboard units publish on: the agency's broker, mqtts://HOST:PORT; "
                        "by default a mosquitto of the app's own, from the site's opening to exit")  # fmt: skip
    p.add_argument("--pki", metavar="DIR",
                   help="the certificates `borderwatch pki` made: the station's (with --broker), else those the "
                        "app's own broker uses (by default a PKI made for the session)")  # fmt: skip
    p.add_argument("--units", type=int, default=4, metavar="N",
                   help="without --broker: how many units the app's own broker makes certificates for")  # fmt: skip
    p.add_argument("--ais", metavar="URL",
                   help="read AIS (udp://HOST:PORT to listen, tcp://HOST:PORT, or an .nmea log): vessels on the "
                        "map, and every video with a pose names them and alerts on dark vessels")  # fmt: skip
    p.add_argument("--cot", metavar="URL", action="append", nargs="?", const=DEFAULT_COT_URL,
                   help=f"{COT_HELP}; for this session, instead of the app's setting (Run → Send to TAK…)")  # fmt: skip
    p.add_argument("--settings", metavar="FILE.ini", help="keep settings and layout in this file")
    p.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)  # grab the window after --quit-after
    p.add_argument("--quit-after", type=float, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if len(args.pose) > len(args.video):
        raise UserError(f"{len(args.pose)} --pose URLs for {len(args.video)} --video streams")
    if args.quit_after is not None and not args.quit_after > 0:
        raise UserError(f"--quit-after must be positive, not {args.quit_after}")
    from groundstation.app.launch import Opening, WindowOptions, run_window, tile_source
    from groundstation.app.station_link import BusConfig
    from groundstation.app.video_panel import StreamConfig

    try:
        tiles = tile_source(args.tiles) if args.tiles else None
    except ValueError as exc:
        raise UserError(f"--tiles {exc}") from None
    bus = BusConfig(args.broker, args.pki, args.units)  # a bad URL is one line, before any window
    if args.pki and not Path(args.pki).is_dir():
        raise UserError(f"--pki {args.pki}: no such folder")
    if args.open_run and not (Path(args.open_run) / "run.json").is_file():
        raise UserError(f"--run {args.open_run}: not a run folder (it has no run.json)")
    site = None
    if args.site:
        from missions.formats import load_site

        site = load_site(args.site)  # a bad file is one line on the terminal, before any window opens
    if args.ais:
        _check_ais(args.ais, site)
    if args.cot:
        from vision.cot.destinations import parse_destinations

        try:
            parse_destinations(args.cot)
        except UserError as exc:
            raise UserError(f"--cot {exc}") from None
    streams = [
        StreamConfig(
            f"vehicle {i + 1}", source, args.pose[i] if i < len(args.pose) else None, vehicle=i, model=args.model
        )
        for i, source in enumerate(args.video)
    ]
    options = WindowOptions(settings=args.settings, runs_dir=args.runs, tiles=tiles,
                            quit_after_s=args.quit_after, screenshot=args.screenshot, bus=bus,
                            cot_urls=tuple(args.cot) if args.cot else None)  # fmt: skip
    return run_window(options, Opening(args.site, args.connect, streams, args.open_run, args.ais))


def _check_ais(url: str, site) -> None:
    """Open the source and close it again, so that a bad URL, a port taken or a missing log is one line
    before any window; the window opens it for good (over the site's map, or when a site is opened)."""
    from missions.geo import LocalFrame
    from vision.ais.feed import AisFeed

    frame = site.frame if site is not None else LocalFrame(0.0, 0.0)
    try:
        AisFeed(url, frame).start().close()
    except UserError as exc:
        raise UserError(f"--ais {exc}") from None

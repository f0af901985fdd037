"""`borderwatch gui`: the operator's desktop app, optionally opened on a site, a fleet and video streams."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from missions.errors import UserError


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
    p.add_argument("--settings", metavar="FILE.ini", help="keep settings and layout in this file")
    p.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)  # grab the window after --quit-after
    p.add_argument("--quit-after", type=float, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def tile_source(text: str):
    """--tiles as a TileSource; a missing file or folder is named."""
    from groundstation.app.tiles import TileSource

    if "://" in text and "{z}" in text:
        return TileSource.online(text, "")
    path = Path(text)
    if path.is_dir():
        return TileSource.folder(path)
    if path.suffix.lower() == ".mbtiles" and path.is_file():
        return TileSource.mbtiles(path)
    raise UserError(f"--tiles {text}: expected an .mbtiles file, a tile folder or a URL with {{z}}/{{x}}/{{y}}")


def run(args: argparse.Namespace) -> int:
    if len(args.pose) > len(args.video):
        raise UserError(f"{len(args.pose)} --pose URLs for {len(args.video)} --video streams")
    if args.quit_after is not None and not args.quit_after > 0:
        raise UserError(f"--quit-after must be positive, not {args.quit_after}")
    os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox" if _is_root() else "")
    tiles = tile_source(args.tiles) if args.tiles else None
    if args.site:
        from missions.formats import load_site

        load_site(args.site)  # a bad file is one line on the terminal, before any window opens

    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from groundstation.app.main_window import MainWindow
    from groundstation.app.settings import RUNS_DIR_KEY, app_settings
    from groundstation.app.video_panel import StreamConfig

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("borderwatch")
    settings = app_settings(args.settings)
    if args.runs:
        settings.setValue(RUNS_DIR_KEY, args.runs)
    window = MainWindow(settings, tiles=tiles, probe_online_tiles=tiles is None)
    window.show()
    if args.site:
        window.open_site(args.site)
    if args.connect:
        window.connect_fleet(args.connect)
    for i, source in enumerate(args.video):
        pose = args.pose[i] if i < len(args.pose) else None
        window.add_stream(StreamConfig(f"vehicle {i + 1}", source, pose, vehicle=i, model=args.model))
    if args.quit_after is not None:

        def finish() -> None:
            if args.screenshot:
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(args.screenshot)
            window.close()

        QTimer.singleShot(int(args.quit_after * 1000), finish)
    app.exec()
    return 0


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0

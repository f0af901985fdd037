"""`borderwatch sim`: simulated drones (or real PX4 SITL) on PX4's ports, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
import time

from missions.errors import UserError

STATUS_EVERY_S = 5.0


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "sim",
        help="run simulated drones that MAVSDK and QGroundControl fly like PX4",
        description=(
            "Start N simulated multicopters: vehicle i is MAVLink system i+1 and sends to 127.0.0.1:14540+i "
            "(connect with udpin://0.0.0.0:14540+i). Without --site they start at a built-in home on the "
            "Algeciras port police pad (36.128, -5.438)."
        ),
    )
    p.add_argument("--vehicles", type=int, default=1, metavar="N", help="number of vehicles (1)")
    p.add_argument("--site", metavar="SITE", help="site file: vehicles spawn at its first launch point")
    p.add_argument("--speed-factor", type=float, default=1.0, metavar="K", help="run K times faster than real time")
    p.add_argument("--base-port", type=int, default=14540, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--px4", metavar="PX4_BUILD_DIR", help="run real PX4 SITL from this build (or set PX4_DIR)")
    p.add_argument("--gazebo", action="store_true", help="with --px4: Gazebo (gz_x500) instead of headless SIH")
    p.add_argument("--camera", action="store_true",
                   help="give each vehicle a synthetic camera streaming H.264/RTP to 127.0.0.1:5600+2i")  # fmt: skip
    p.add_argument("--camera-fps", type=float, default=15.0, metavar="FPS", help="camera frame rate (15)")
    p.add_argument("--camera-dir", default="out/sim", metavar="DIR",
                   help="where the SDP files and ground-truth sidecars go (out/sim)")  # fmt: skip
    p.add_argument("--camera-base-port", type=int, default=5600, help=argparse.SUPPRESS)
    p.add_argument("--duration", type=float, metavar="S", help=argparse.SUPPRESS)  # for tests: stop after S s
    p.set_defaults(run=run)


def _site(args: argparse.Namespace):
    from missions.formats import BUNDLED_SITES, load_site

    return load_site(args.site or BUNDLED_SITES / "algeciras-port.geojson")


def _homes(args: argparse.Namespace, site) -> list[tuple[float, float]]:
    from sitl.sim import ALGECIRAS_PAD_DEG, spaced_homes

    if site is None:
        return spaced_homes(ALGECIRAS_PAD_DEG, args.vehicles)
    if not site.launch:
        raise UserError(f"{args.site}: the site has no launch point to start the vehicles at")
    point = site.launch[0].shape_deg.centroid
    return spaced_homes((point.y, point.x), args.vehicles)


def run(args: argparse.Namespace) -> int:
    if args.vehicles < 1:
        raise UserError(f"--vehicles must be at least 1, not {args.vehicles}")
    if not args.speed_factor > 0:
        raise UserError(f"--speed-factor must be positive, not {args.speed_factor}")
    if not args.camera_fps > 0:
        raise UserError(f"--camera-fps must be positive, not {args.camera_fps}")
    if args.camera and (args.px4 or args.gazebo):
        raise UserError("--camera draws the built-in simulator's world; PX4 SITL streams Gazebo's own camera")
    if args.gazebo and not args.px4:
        import os

        if not os.environ.get("PX4_DIR"):
            raise UserError("--gazebo needs a PX4 build: pass --px4 DIR or set PX4_DIR")
    # Loaded once: the homes come from its launch point, the cameras draw it.
    site = _site(args) if args.site or args.camera else None
    homes = _homes(args, site if args.site else None)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.px4 or args.gazebo:
            return _run_px4(args, homes, stop)
        return _run_sim(args, homes, stop, site)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(stop: threading.Event, duration: float | None, status) -> None:
    started = time.monotonic()
    while not stop.is_set():
        left = None if duration is None else duration - (time.monotonic() - started)
        if left is not None and left <= 0:
            return
        if stop.wait(STATUS_EVERY_S if left is None else min(STATUS_EVERY_S, left)):
            return
        status()


def _run_sim(args: argparse.Namespace, homes: list[tuple[float, float]], stop: threading.Event, site) -> int:
    from sitl.sim import SimFleet

    fleet = SimFleet(homes, speed_factor=args.speed_factor, base_port=args.base_port)
    try:
        fleet.start()
    except OSError as exc:
        raise UserError(f"cannot open the simulator's sockets: {exc}") from None
    cameras = None
    try:
        for v in fleet.vehicles:
            print(f"vehicle {v.system_id}: system id {v.system_id}, sends to 127.0.0.1:{v.port}, "
                  f"home {v.home[0]:.6f},{v.home[1]:.6f} (connect udpin://0.0.0.0:{v.port})", flush=True)  # fmt: skip
        if args.camera:
            cameras = _start_cameras(args, fleet, site)

        def status() -> None:
            if fleet.error is not None:
                stop.set()
                return
            parts = []
            for v in fleet.vehicles:
                s = v.state()
                parts.append(f"#{v.system_id} {s.mode}{' armed' if s.armed else ''} alt {s.rel_alt_m:.0f} m "
                             f"bat {s.battery_pct:.0f}%")  # fmt: skip
            print("sim: " + " | ".join(parts), flush=True)

        _wait(stop, args.duration, status)
    finally:
        if cameras is not None:
            cameras.stop()
        fleet.stop()
    if fleet.error is not None:
        raise RuntimeError("the simulator stopped") from fleet.error
    print("sim: stopped", flush=True)
    return 0


def _start_cameras(args: argparse.Namespace, fleet, site):
    from sitl.cameras import SimCameras
    from sitl.world import World

    cameras = SimCameras(
        fleet, World.for_site(site), args.camera_dir, fps=args.camera_fps, base_port=args.camera_base_port
    )
    try:
        cameras.start()
    except OSError as exc:
        raise UserError(f"cannot start the cameras: {exc}") from None
    for i, v in enumerate(fleet.vehicles):
        print(f"camera {v.system_id}: H.264/RTP to 127.0.0.1:{cameras.ports[i]}, SDP {cameras.sdp_path(i)}, "
              f"ground truth {cameras.truth_path(i)}, pose over MAVLink at {v.onboard_url}", flush=True)  # fmt: skip
    return cameras


def _run_px4(args: argparse.Namespace, homes: list[tuple[float, float]], stop: threading.Event) -> int:
    from sitl.px4 import Px4Fleet, px4_instances, resolve_build_dir

    build = resolve_build_dir(args.px4)
    instances = px4_instances(build, args.vehicles, homes, gazebo=args.gazebo, speed_factor=args.speed_factor)
    with Px4Fleet(instances) as fleet:
        for inst in instances:
            lat, lon = homes[inst.instance]
            print(f"PX4 instance {inst.instance}: system id {inst.system_id}, sends to 127.0.0.1:{inst.port}, "
                  f"home {lat:.6f},{lon:.6f}, log {inst.cwd / 'out.log'}", flush=True)  # fmt: skip

        def status() -> None:
            codes = fleet.poll()
            running = sum(c is None for c in codes)
            print(f"px4: {running} of {len(codes)} instances running", flush=True)
            if running == 0:
                stop.set()

        _wait(stop, args.duration, status)
    print("px4: stopped", flush=True)
    return 0

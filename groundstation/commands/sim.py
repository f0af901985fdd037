"""`borderwatch sim`: simulated drones (or real PX4 SITL) on PX4's ports, until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time

from missions.errors import UserError

STATUS_EVERY_S = 5.0
SIM_PKI = "out/sim/pki"


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
    p.add_argument("--per-port", type=int, default=1, metavar="N",
                   help="vehicles that share a port (1): with N, vehicles 1..N send to 14540, the next N to 14541…, "
                        "and the station tells them apart by system id (udpin://0.0.0.0:14540?system=N)")  # fmt: skip
    p.add_argument("--px4", metavar="PX4_BUILD_DIR", help="run real PX4 SITL from this build (or set PX4_DIR)")
    p.add_argument("--gazebo", action="store_true", help="with --px4: Gazebo (gz_x500) instead of headless SIH")
    p.add_argument("--camera", action="store_true",
                   help="give each vehicle a synthetic camera streaming H.264/RTP to 127.0.0.1:5600+2i; with --px4 it "
                        "renders from PX4's own state (SIH's UDP 19410+N), looking straight down")  # fmt: skip
    p.add_argument("--camera-fps", type=float, default=15.0, metavar="FPS", help="camera frame rate (15)")
    p.add_argument("--camera-dir", default="out/sim", metavar="DIR",
                   help="where the SDP files and ground-truth sidecars go (out/sim)")  # fmt: skip
    p.add_argument("--camera-base-port", type=int, default=5600, help=argparse.SUPPRESS)
    p.add_argument("--broker", metavar="URL",
                   help="with --camera: the event bus the onboard units publish on, mqtts://HOST:PORT (default: "
                        "a mosquitto of the simulator's own on a free port, stopped on exit)")  # fmt: skip
    p.add_argument("--pki", metavar="DIR",
                   help="with --camera: the bus's certificates (default with no --broker: out/sim/pki, made and "
                        "issued for the site's station and units as needed)")  # fmt: skip
    p.add_argument("--ais", metavar="udp://HOST:PORT",
                   help="with --camera: the synthetic world's vessels send AIS (NMEA !AIVDM, one datagram per message) "
                        "to this address, at AIS's reporting rates in the simulation's time")  # fmt: skip
    p.add_argument("--ais-scenario", metavar="FILE",
                   help="with --ais: which vessels are dark or spoof (JSON, see sitl.synthetic.ais; default: one of "
                        "each, at random); who is who goes to ais-truth.json in --camera-dir")  # fmt: skip
    p.add_argument("--duration", type=float, metavar="S", help=argparse.SUPPRESS)  # for tests: stop after S s
    p.set_defaults(run=run)


def _site(args: argparse.Namespace):
    from missions.formats import BUNDLED_SITES, load_site

    return load_site(args.site or BUNDLED_SITES / "algeciras-port.geojson")


def _homes(args: argparse.Namespace, site) -> list[tuple[float, float]]:
    from sitl.vehicles.fleet import ALGECIRAS_PAD_DEG, spaced_homes

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
    if args.per_port < 1:
        raise UserError(f"--per-port must be at least 1, not {args.per_port}")
    if args.per_port > 1 and (args.px4 or args.gazebo):
        raise UserError("--per-port is for the built-in simulator: PX4 instance N always sends to 14540+N")
    if args.gazebo and args.camera:
        raise UserError("--camera renders from PX4 SIH's state; with --gazebo use Gazebo's own camera")
    if args.ais and not args.camera:
        raise UserError(f"--ais {args.ais}: the vessels that send AIS are the camera world's; add --camera")
    if args.ais_scenario and not args.ais:
        raise UserError(f"--ais-scenario {args.ais_scenario}: give --ais udp://HOST:PORT to send the AIS to")
    if args.ais:
        from sitl.synthetic.ais import udp_sender

        udp_sender(args.ais).close()  # a bad address is said before anything starts
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
            return _run_px4(args, homes, stop, site)
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
    from sitl.vehicles.fleet import SimFleet

    fleet = SimFleet(homes, speed_factor=args.speed_factor, base_port=args.base_port, per_port=args.per_port)
    try:
        fleet.start()
    except OSError as exc:
        raise UserError(f"cannot open the simulator's sockets: {exc}") from None
    cameras = None
    stack = contextlib.ExitStack()
    try:
        for v in fleet.vehicles:
            print(f"vehicle {v.system_id}: system id {v.system_id}, sends to 127.0.0.1:{v.port}, "
                  f"home {v.home[0]:.6f},{v.home[1]:.6f} (connect {v.connect_url.replace(v.host, '0.0.0.0')})",
                  flush=True)  # fmt: skip
        if args.camera:
            cameras = _start_cameras(args, fleet, site)
            stack.enter_context(_bus(args, site, [v.onboard_url for v in fleet.vehicles], cameras))
            if args.ais:
                stack.enter_context(_ais(args, cameras, site))

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
        stack.close()
        if cameras is not None:
            cameras.stop()
        fleet.stop()
    if fleet.error is not None:
        raise RuntimeError("the simulator stopped") from fleet.error
    print("sim: stopped", flush=True)
    return 0


def _start_cameras(args: argparse.Namespace, fleet, site):
    from sitl.synthetic.cameras import SimCameras
    from sitl.synthetic.world import World

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


def _run_px4(args: argparse.Namespace, homes: list[tuple[float, float]], stop: threading.Event, site) -> int:
    from sitl.px4_sitl.launcher import Px4Fleet, Px4StartError, resolve_build_dir

    build = resolve_build_dir(args.px4)
    fleet = Px4Fleet(build, homes, gazebo=args.gazebo, speed_factor=args.speed_factor)
    try:
        fleet.start()
    except Px4StartError as exc:
        print(f"borderwatch: sim: {exc}", file=sys.stderr, flush=True)
        return 1
    cameras = None
    stack = contextlib.ExitStack()
    try:
        for inst in fleet.instances:
            lat, lon = inst.home
            print(f"PX4 instance {inst.instance}: system id {inst.system_id}, sends to 127.0.0.1:{inst.port}, "
                  f"home {lat:.6f},{lon:.6f}, ready (connect {inst.connect_url}; "
                  f"QGroundControl: UDP {inst.gcs_port}), log {inst.log_path}", flush=True)  # fmt: skip
        if args.camera:
            cameras = _start_px4_cameras(args, fleet, site)
            poses = [f"udpin:127.0.0.1:{inst.payload_port}" for inst in fleet.instances]
            stack.enter_context(_bus(args, site, poses, cameras))
            if args.ais:
                stack.enter_context(_ais(args, cameras, site))

        def status() -> None:
            codes = fleet.poll()
            running = sum(c is None for c in codes)
            seen = "" if cameras is None else ", camera frames " + " ".join(str(c.frames) for c in cameras.stats)
            print(f"px4: {running} of {len(codes)} instances running{seen}", flush=True)
            if running == 0:
                stop.set()

        _wait(stop, args.duration, status)
    finally:
        stack.close()
        if cameras is not None:
            cameras.stop()
            cameras.mount.close()
        fleet.stop()
    print("px4: stopped", flush=True)
    return 0


def _start_px4_cameras(args: argparse.Namespace, fleet, site):
    """Synthetic cameras on the PX4 vehicles, rendering from each one's true state (sitl.px4_sitl.truth)."""
    from sitl.px4_sitl.truth import Px4Mount, Px4Truth
    from sitl.synthetic.cameras import SimCameras
    from sitl.synthetic.world import World

    truths: list = []
    try:
        for inst in fleet.instances:
            truths.append(Px4Truth(inst.instance, args.speed_factor))
        mount = Px4Mount(truths)
        cameras = SimCameras(
            mount, World.for_site(site), args.camera_dir, fps=args.camera_fps, base_port=args.camera_base_port
        )
        cameras.start()
    except OSError as exc:
        for truth in truths:
            truth.close()
        raise UserError(f"cannot start the cameras: {exc}") from None
    for i, inst in enumerate(fleet.instances):
        print(f"camera {inst.system_id}: H.264/RTP to 127.0.0.1:{cameras.ports[i]}, SDP {cameras.sdp_path(i)}, "
              f"ground truth {cameras.truth_path(i)}, pose over MAVLink at udpin:127.0.0.1:{inst.payload_port} "
              f"(rendered from PX4's own state on UDP {truths[i].port})", flush=True)  # fmt: skip
    return cameras


@contextlib.contextmanager
def _bus(args: argparse.Namespace, site, poses: list[str], cameras):
    """The bus the cameras' onboard units publish on: the simulator's own mosquitto unless --broker;
    says how to start each unit."""
    from pathlib import Path

    from groundstation.link import identity as ids
    from groundstation.link import pki
    from groundstation.link.station import bus_site
    from vision.bus.address import parse_broker_url

    slug = bus_site(site.name)
    if args.broker is not None:
        if args.pki is None:
            raise UserError(f"--broker {args.broker}: also give --pki DIR, the folder with the units' certificates")
        url, folder, broker = parse_broker_url(args.broker).url, Path(args.pki), contextlib.nullcontext()
    else:
        from groundstation.link.broker import Broker

        folder = Path(args.pki or SIM_PKI)
        if not pki.ca_paths(folder)[0].exists():
            pki.init(folder)
        for who in (ids.station(slug), *(ids.unit(slug, n) for n in range(1, len(poses) + 1))):
            if not pki.client_credentials(folder, who).cert.exists():
                pki.issue(folder, who)
        broker = Broker(folder)
    with broker as running:
        if running is not None:
            url = running.address.url
            print(f"event bus: {url} (the simulator's own mosquitto), certificates in {folder}; "
                  f"a station connects as {ids.station(slug).name}", flush=True)  # fmt: skip
        for i, pose in enumerate(poses):
            unit = ids.unit(slug, i + 1).name
            print(f"unit {i + 1}: borderwatch onboard --mavlink {pose} --source {cameras.sdp_path(i)} "
                  f"--site {site.source} --broker {url} --pki {folder} --unit {unit}", flush=True)  # fmt: skip
        yield running


@contextlib.contextmanager
def _ais(args: argparse.Namespace, cameras, site):
    """The camera world's vessels on AIS; who is dark and who lies goes to ais-truth.json beside the cameras'
    ground truth."""
    from sitl.synthetic.ais import AisScenario, broadcast_world

    if args.ais_scenario:
        scenario = AisScenario.load(args.ais_scenario)
    else:
        scenario = AisScenario.random(cameras.world, dark=1, spoof=1)
    truth = cameras.out_dir / "ais-truth.json"
    with broadcast_world(cameras, scenario, args.ais, truth, site.frame) as broadcaster:
        print(f"AIS: {len(broadcaster.vessels)} vessels to {args.ais}, ground truth {truth}", flush=True)
        yield broadcaster

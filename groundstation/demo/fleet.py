"""The demo's simulated fleet: drones at the site's launch point (the built-in simulator or PX4
SIH) with cameras over the site's synthetic world, on ports that are free.

The demo is the one place outside `borderwatch sim` that starts simulators (STYLE.md lets the
demo and sim commands do so).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from missions.errors import UserError
from missions.site import Site
from sitl.ports import free_port_block, udp_ports_busy
from sitl.synthetic.cameras import SimCameras
from sitl.synthetic.world import World
from sitl.vehicles.fleet import ONBOARD_PORT_OFFSET, SimFleet, spaced_homes
from vision.camera import Intrinsics
from vision.frames import StreamClock, StreamPace

MAVLINK_PORT = 14540
VIDEO_PORT = 5600
# Frames a second in the drones' own time: a vessel crossing a footprint is seen in tens of frames.
CAMERA_FPS = 2.0


@dataclass(frozen=True)
class SimulatedFleet:
    """Started simulated drones and their cameras: where to connect, where the video and pose come from,
    and the clocks the frames and the run are stamped by (the simulation's, see sitl.vehicles.fleet)."""

    cameras: SimCameras
    urls: tuple[str, ...]  # MAVSDK connection per drone
    sdp_paths: tuple[Path, ...]  # its camera's stream
    pose_urls: tuple[str, ...]  # its pose for geolocation (pymavlink)
    clocks: tuple[StreamClock, ...]  # its stream's clock
    run_clock: Callable[[], float]  # the run's clock
    stopped: Callable[[], str | None]  # why the simulator stopped, once it has
    kind: str = "built-in simulator"

    @property
    def intrinsics(self) -> Intrinsics:
        return self.cameras.renderer.intrinsics

    @property
    def problem(self) -> str | None:
        """Why the simulation is no longer what the demo needs, if it is not."""
        stopped = self.stopped()
        if stopped is not None:
            return stopped
        return next((s.error for s in self.cameras.stats if s.error is not None), None)


@dataclass(frozen=True)
class Ports:
    mavlink: int
    video: int
    note: str | None = None  # said when the standard ports were taken and others are used


def choose_ports(drones: int, mavlink: int = MAVLINK_PORT, video: int = VIDEO_PORT) -> Ports:
    """The standard ports when free (QGroundControl can listen in), a free block otherwise."""
    notes = []
    wanted = [mavlink + i for i in range(drones)] + [mavlink + ONBOARD_PORT_OFFSET + i for i in range(drones)]
    busy = udp_ports_busy(wanted)
    if busy:
        mavlink = free_port_block(drones, also=ONBOARD_PORT_OFFSET)
        notes.append(f"MAVLink port(s) {_ports(busy)} are in use (another simulator or ground station?): "
                     f"the drones use {mavlink}-{mavlink + drones - 1} instead")  # fmt: skip
    busy = udp_ports_busy(range(video, video + 2 * drones))
    if busy:
        video = free_port_block(2 * drones)
        notes.append(f"video port(s) {_ports(busy)} are in use: the cameras stream to {video}-{video + 2 * drones - 1}")
    return Ports(mavlink, video, "; ".join(notes) or None)


def _ports(ports: Sequence[int]) -> str:
    return ", ".join(str(p) for p in ports)


@contextlib.contextmanager
def simulated_fleet(
    site: Site,
    drones: int,
    speed_factor: float,
    directory: Path,
    ports: Ports,
    camera_fps: float = CAMERA_FPS,
    px4: Path | None = None,
) -> Iterator[SimulatedFleet]:
    """`drones` simulated drones at the site's launch point, each with a camera over the site's world:
    the built-in simulator, or with `px4` (a build folder) real PX4 SIH instances."""
    if px4 is not None:
        with _px4_fleet(site, drones, speed_factor, directory, ports, camera_fps, px4) as sim:
            yield sim
        return
    fleet = SimFleet.at_site(site, drones, speed_factor=speed_factor, base_port=ports.mavlink)
    try:
        fleet.start()
    except OSError as exc:
        raise UserError(
            f"cannot open the simulator's ports {ports.mavlink}-{ports.mavlink + drones - 1}: {exc}"
        ) from None
    try:
        cameras = SimCameras(fleet, World.for_site(site), directory, fps=camera_fps, base_port=ports.video, truth=False)
        cameras.start()
        try:
            yield SimulatedFleet(
                cameras,
                tuple(f"udpin://0.0.0.0:{v.port}" for v in fleet.vehicles),
                tuple(cameras.sdp_path(i) for i in range(drones)),
                tuple(v.onboard_url for v in fleet.vehicles),
                tuple(StreamClock(fleet.clock, fleet.clock_at, _pace(cameras, i)) for i in range(drones)),
                fleet.clock,
                lambda: None if fleet.error is None else f"the simulator stopped: {fleet.error!r}",
            )
        finally:
            cameras.stop()
    finally:
        fleet.stop()


@contextlib.contextmanager
def _px4_fleet(
    site: Site, drones: int, speed_factor: float, directory: Path, ports: Ports, camera_fps: float, build: Path
) -> Iterator[SimulatedFleet]:
    """PX4 SIH instances 0…drones-1 at the site's launch point, cameras rendering from PX4's own truth."""
    from sitl.px4_sitl.launcher import Px4Fleet, Px4StartError
    from sitl.px4_sitl.truth import Px4Mount, Px4Truth

    launch = site.launch[0].shape_deg.centroid
    fleet = Px4Fleet(build, spaced_homes((launch.y, launch.x), drones), speed_factor=speed_factor)
    try:
        fleet.start()
    except Px4StartError as exc:
        raise DemoStartError(str(exc)) from None
    try:
        with contextlib.ExitStack() as stack:
            truths = [Px4Truth(inst.instance, speed_factor) for inst in fleet.instances]
            for truth in truths:
                stack.callback(truth.close)
            cameras = SimCameras(
                Px4Mount(truths), World.for_site(site), directory, fps=camera_fps, base_port=ports.video, truth=False
            )
            cameras.start()
            stack.callback(cameras.stop)

            def stopped() -> str | None:
                codes = fleet.poll()
                dead = [i for i, code in enumerate(codes) if code is not None]
                return None if not dead else f"PX4 instance {dead[0]} exited with code {codes[dead[0]]}"

            yield SimulatedFleet(
                cameras,
                tuple(fleet.connect_urls),
                tuple(cameras.sdp_path(i) for i in range(drones)),
                tuple(f"udpin:127.0.0.1:{inst.payload_port}" for inst in fleet.instances),
                tuple(StreamClock(lambda t=t: t.clock_at(t.time_s()), t.clock_at) for t in truths),
                lambda t=truths[0]: t.clock_at(t.time_s()),
                stopped,
                kind="PX4 SITL (SIH)",
            )
    finally:
        fleet.stop()


def _pace(cameras: SimCameras, index: int) -> StreamPace:
    """How the pipeline on camera `index` tells the simulation, which waits for it, what it has taken."""
    return StreamPace(
        functools.partial(cameras.expect_consumer, index),
        functools.partial(cameras.consumed, index),
        functools.partial(cameras.release, index),
    )


class DemoStartError(RuntimeError):
    """The simulator could not be started (a PX4 build that does not run): the demo ends, exit 1."""

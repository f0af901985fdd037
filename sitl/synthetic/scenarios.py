"""Ready-made situations for tests and benchmarks: a drone with a camera over a watched zone.

`hover_over_zone` starts one simulated vehicle on a boat inside a watch zone of a site
(30 m in from its edge, so part of the view lies outside), sends it to a height above
the sea, puts boats crossing the water below it, and streams its synthetic camera over
RTP. The test then reads the SDP, the vehicle's onboard MAVLink URL and the ground-truth
sidecar, and runs whatever it is testing against them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from missions.site import Site
from sitl.ground import GroundLink
from sitl.ports import free_port_block
from sitl.synthetic.cameras import SimCameras
from sitl.synthetic.render import CameraRenderer
from sitl.synthetic.world import VESSEL_KINDS, World, WorldObject
from sitl.vehicles.fleet import SimFleet
from sitl.vehicles.model import VehicleConfig
from vision.camera import CameraPose

_HULLS = ((235, 235, 235), (40, 40, 190), (20, 120, 230))


@dataclass(frozen=True)
class Hover:
    site: Site
    zone: str
    zone_m: shapely.Polygon
    world: World
    fleet: SimFleet
    cameras: SimCameras

    @property
    def sdp_path(self) -> Path:
        return self.cameras.sdp_path(0)

    @property
    def truth_path(self) -> Path:
        return self.cameras.truth_path(0)

    @property
    def onboard_url(self) -> str:
        return self.fleet.vehicles[0].onboard_url


def crossing_vessels(
    centre: tuple[float, float], count: int = 6, half_length_m: float = 70.0
) -> tuple[WorldObject, ...]:
    """Boats going back and forth across a point at different angles, offsets and speeds."""
    cx, cy = centre
    out = []
    for i in range(count):
        kind = VESSEL_KINDS[i % 4]
        angle = math.radians(10 + i * 155 / max(count - 1, 1))
        offset = (-20, 15, 0, 30, -35, 25)[i % 6]
        nx, ny = -math.cos(angle), math.sin(angle)
        x0, y0 = cx + nx * offset, cy + ny * offset
        dx, dy = math.sin(angle) * half_length_m, math.cos(angle) * half_length_m
        path = shapely.LineString([(x0 - dx, y0 - dy), (x0 + dx, y0 + dy)])
        out.append(WorldObject(100 + i, kind, _HULLS[i % 3], path, kind.speed_m_s * 0.6, phase_m=37.0 * i))
    return tuple(out)


def inside_edge(zone_m: shapely.Polygon, inset_m: float) -> tuple[float, float]:
    """A point `inset_m` inside the zone from the edge point nearest its centroid."""
    edge = zone_m.exterior
    nearest = edge.interpolate(edge.project(zone_m.centroid))
    toward = np.array([zone_m.centroid.x - nearest.x, zone_m.centroid.y - nearest.y])
    point = np.array([nearest.x, nearest.y]) + toward / np.linalg.norm(toward) * inset_m
    return float(point[0]), float(point[1])


def zone_frames(
    site: Site, zone: str, count: int, fps: float = 30.0, camera_alt_m: float = 60.0
) -> tuple[CameraPose, list[np.ndarray]]:
    """`count` frames of boats crossing below a still camera inside a zone, with the camera's pose."""
    zone_m = site.local(next(z for z in site.watch if z.name == zone))
    centre = inside_edge(zone_m, 30.0)
    world = World.for_site(site, seed=3).with_objects(crossing_vessels(centre))
    lon, lat = site.frame.lonlat(*centre)
    pose = CameraPose(lat, lon, camera_alt_m, yaw_deg=20.0, gimbal_stabilized=True)
    renderer = CameraRenderer(world)
    return pose, [renderer.render(pose, 100.0 + i / fps).image for i in range(count)]


@contextlib.contextmanager
def hover_over_zone(
    site: Site, zone: str, out_dir: Path, camera_alt_m: float = 60.0, fps: float = 10.0, vessels: int = 6
) -> Iterator[Hover]:
    """One drone hovering `camera_alt_m` above the sea inside `zone`, its camera streaming; stopped after."""
    zone_m = site.local(next(z for z in site.watch if z.name == zone))
    centre = inside_edge(zone_m, 30.0)
    world = World.for_site(site, seed=3)
    world = world.with_objects(crossing_vessels(centre, vessels))
    lon, lat = site.frame.lonlat(*centre)
    config = VehicleConfig(climb_m_s=10.0, home_alt_amsl_m=10.0)
    fleet = SimFleet([(lat, lon)], 1.0, free_port_block(2), config)
    fleet.start()
    cameras = SimCameras(fleet, world, out_dir, fps=fps, base_port=free_port_block(4))
    try:
        vehicle = fleet.vehicles[0]
        with GroundLink(vehicle.port) as g:
            if not g.wait_peer():
                raise RuntimeError("the simulated vehicle sent no heartbeat")
            if g.command(1, 400, 1).result != 0:
                raise RuntimeError("the simulated vehicle refused to arm")
            if g.command(1, 22, *[math.nan] * 6, camera_alt_m + 0.0).result != 0:
                raise RuntimeError("the simulated vehicle refused to take off")
            deadline = time.monotonic() + 30.0
            while vehicle.state().camera_pose().alt_m < camera_alt_m - 0.5:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the vehicle did not reach {camera_alt_m} m above the sea in 30 s")
                time.sleep(0.1)
        cameras.start()
        yield Hover(site, zone, zone_m, world, fleet, cameras)
    finally:
        cameras.stop()
        fleet.stop()

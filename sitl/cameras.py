"""A synthetic camera on every simulated drone: render its view, stream it, log the truth.

Each camera renders the world from its vehicle's telemetry pose (the snapshot the
vehicle's MAVLink stream reports at that same instant), sends it as H.264 over RTP to
127.0.0.1:5600 + 2i (RTCP on the odd port above, see `sitl.video`) with an SDP file
beside it, and appends one JSON line per frame to a ground-truth sidecar: the frame's
capture time, the pose, and every object in view with its class, world position, pixel
box and the watch zones it is in.

World time is the simulator's clock, so at a speed factor of 10 the boats move ten times
faster too, as everything else does. Frames are paced in wall time; a camera that cannot
keep up skips frames rather than falling behind, and counts them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import shapely

from sitl.render import CameraRenderer
from sitl.sim import SimFleet
from sitl.video import H264RtpStreamer, video_port
from sitl.world import World
from vision.camera import Intrinsics

VIDEO_BASE_PORT = 5600


@dataclass
class CameraStats:
    frames: int = 0
    skipped: int = 0
    render_s: float = 0.0
    error: str | None = None


class SimCameras:
    """Cameras for all vehicles of a fleet, one thread each."""

    def __init__(
        self,
        fleet: SimFleet,
        world: World,
        out_dir: str | Path,
        fps: float = 15.0,
        base_port: int = VIDEO_BASE_PORT,
        intrinsics: Intrinsics | None = None,
        truth: bool = True,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"camera fps must be positive, not {fps}")
        self.fleet = fleet
        self.world = world
        self.out_dir = Path(out_dir)
        self.fps = fps
        self.ports = [video_port(i, base_port) for i in range(len(fleet.vehicles))]
        self.renderer = CameraRenderer(world, intrinsics)
        self.truth = truth
        self.stats = [CameraStats() for _ in fleet.vehicles]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._zones = [(name, shape) for name, shape in world.watch_m.items()]

    def sdp_path(self, index: int) -> Path:
        return self.out_dir / f"camera-{index + 1}.sdp"

    def truth_path(self, index: int) -> Path:
        return self.out_dir / f"camera-{index + 1}.truth.jsonl"

    def start(self) -> None:
        if self._threads:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        streamers = []
        for i, port in enumerate(self.ports):
            intr = self.renderer.intrinsics
            streamers.append(
                H264RtpStreamer(port, self.sdp_path(i), intr.width_px, intr.height_px, fps=max(1, round(self.fps)))
            )
        for i, streamer in enumerate(streamers):
            thread = threading.Thread(target=self._run, args=(i, streamer), name=f"sim-camera-{i + 1}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []

    def __enter__(self) -> SimCameras:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, index: int, streamer: H264RtpStreamer) -> None:
        stats = self.stats[index]
        vehicle = self.fleet.vehicles[index]
        period = 1.0 / self.fps
        truth = self.truth_path(index).open("a", encoding="utf-8") if self.truth else None
        try:
            next_s = time.monotonic()
            while not self._stop.is_set():
                state = vehicle.state()
                started = time.perf_counter()
                pose = state.camera_pose()
                rendered = self.renderer.render(pose, state.sim_time_s)
                streamer.send(rendered.image, state.wall_time_s)
                stats.render_s += time.perf_counter() - started
                if truth is not None:
                    truth.write(json.dumps(self._truth_line(index, stats.frames, state, pose, rendered.objects)) + "\n")
                    truth.flush()
                stats.frames += 1
                next_s += period
                lag = time.monotonic() - next_s
                if lag > period:
                    skipped = int(lag // period)
                    stats.skipped += skipped
                    next_s += skipped * period
                self._stop.wait(max(0.0, next_s - time.monotonic()))
        except Exception as exc:  # a camera that dies says why; the simulator keeps flying
            stats.error = f"camera {index + 1}: {type(exc).__name__}: {exc}"
        finally:
            streamer.close()
            if truth is not None:
                truth.close()

    def _truth_line(self, index: int, frame: int, state, pose, objects) -> dict:
        items = []
        for obj in objects:
            point = shapely.Point(obj.x_m, obj.y_m)
            entry = obj.to_json_dict()
            entry["zones"] = [name for name, shape in self._zones if shape.contains(point)]
            items.append(entry)
        return {
            "vehicle": index + 1,
            "frame": frame,
            "time_s": state.wall_time_s,
            "sim_time_s": round(state.sim_time_s, 4),
            "pose": {
                "lat_deg": pose.lat_deg,
                "lon_deg": pose.lon_deg,
                "alt_m": round(pose.alt_m, 3),
                "roll_deg": round(pose.roll_deg, 3),
                "pitch_deg": round(pose.pitch_deg, 3),
                "yaw_deg": round(pose.yaw_deg, 3),
                "gimbal_pitch_deg": pose.gimbal_pitch_deg,
            },
            "objects": items,
        }

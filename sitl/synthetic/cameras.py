"""A synthetic camera on every simulated drone: render its view, stream it, log the truth.

Each camera takes a frame every 1/fps of the drones' own time: it renders the world as it is
at that instant from where its vehicle is at that instant, sends it as H.264 over RTP to
127.0.0.1:5600 + 2i (RTCP on the odd port above, see `sitl.synthetic.video`), stamped by the
simulation's clock, with an SDP file beside it, and appends one JSON line per frame to a
ground-truth sidecar: the frame's time, the pose, and every object in view with its class,
world position, pixel box and the watch zones it is in.

The vehicles come from a *mount* (:class:`SimMount` for the built-in simulator,
`sitl.px4_sitl.truth.Px4Mount` for PX4 SIH). The built-in simulator waits for its cameras, as
PX4's lockstep waits for its simulator: a camera holds it at each frame's instant until the
frame is rendered and, when a pipeline consumes the stream and says so (`consumed`), until
the pipeline is no more than `MAX_IN_FLIGHT` frames behind. So the frame rate in the drones'
own time is kept whatever the machine's load; only the simulation slows down. PX4 does not
wait: a camera on it that falls behind skips the instants PX4 has run past, and counts them.

The world's traffic on the built-in simulator moves from the moment the first drone arms
(`SimFleet.first_armed_s`): a patrol meets the same vessels where they were however long the
ground station took to connect and upload, which happens in wall time.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import shapely

from sitl.synthetic.render import CameraRenderer
from sitl.synthetic.video import H264RtpStreamer, video_port
from sitl.synthetic.world import World
from sitl.vehicles.fleet import SimFleet
from vision.camera import CameraPose, Intrinsics

VIDEO_BASE_PORT = 5600


MAX_IN_FLIGHT = 2  # frames a consuming pipeline may be behind before the simulation waits for it
CONSUMER_PATIENCE_S = 5.0  # wall seconds a camera waits for a silent pipeline before it goes on without


class Mount(Protocol):
    """The vehicles cameras ride on, and their time."""

    holds: bool  # whether the simulation waits for its cameras

    @property
    def count(self) -> int: ...

    def time_s(self, index: int) -> float: ...

    def clock_at(self, index: int, vehicle_s: float) -> float: ...

    def hold_at(self, key: object, index: int, vehicle_s: float | None) -> None: ...

    def wait_until(self, index: int, vehicle_s: float, stop: threading.Event, timeout_s: float = 1.0) -> bool: ...

    def world_time_s(self, index: int, vehicle_s: float) -> float: ...

    def camera_pose(self, index: int, vehicle_s: float) -> CameraPose | None: ...


class SimMount:
    """The built-in simulator's vehicles, which wait for their cameras."""

    holds = True

    def __init__(self, fleet: SimFleet) -> None:
        self.fleet = fleet

    @property
    def count(self) -> int:
        return len(self.fleet.vehicles)

    def time_s(self, index: int) -> float:
        return self.fleet.sim_time_s

    def clock_at(self, index: int, vehicle_s: float) -> float:
        return self.fleet.clock_at(vehicle_s)

    def hold_at(self, key: object, index: int, vehicle_s: float | None) -> None:
        self.fleet.hold_at(key, vehicle_s)

    def wait_until(self, index: int, vehicle_s: float, stop: threading.Event, timeout_s: float = 1.0) -> bool:
        return self.fleet.wait_until(vehicle_s, stop, timeout_s)

    def world_time_s(self, index: int, vehicle_s: float) -> float:
        armed = self.fleet.first_armed_s
        return 0.0 if armed is None else max(0.0, vehicle_s - armed)

    def camera_pose(self, index: int, vehicle_s: float) -> CameraPose | None:
        return self.fleet.vehicles[index].state().camera_pose()  # held there: the state of that instant


@dataclass
class CameraStats:
    frames: int = 0
    skipped: int = 0  # instants a camera on PX4 fell behind
    unconsumed: int = 0  # times a silent pipeline was given up waiting for
    error: str | None = None


class SimCameras:
    """Cameras for all vehicles of a fleet (a SimFleet, or any mount), one thread each."""

    def __init__(
        self,
        fleet: SimFleet | Mount,
        world: World,
        out_dir: str | Path,
        fps: float = 15.0,
        base_port: int = VIDEO_BASE_PORT,
        intrinsics: Intrinsics | None = None,
        truth: bool = True,
    ) -> None:
        """`fps` in the drones' own time."""
        if fps <= 0:
            raise ValueError(f"camera fps must be positive, not {fps}")
        self.mount: Mount = SimMount(fleet) if isinstance(fleet, SimFleet) else fleet
        self.world = world
        self.out_dir = Path(out_dir)
        self.fps = fps
        self.ports = [video_port(i, base_port) for i in range(self.mount.count)]
        self.renderer = CameraRenderer(world, intrinsics)
        self.truth = truth
        self.stats = [CameraStats() for _ in range(self.mount.count)]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._zones = [(name, shape) for name, shape in world.watch_m.items()]
        self._consumed: list[float | None] = [None] * self.mount.count  # newest frame time a pipeline took
        self._consumed_changed = threading.Condition()

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
        with self._consumed_changed:
            self._consumed_changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []

    def expect_consumer(self, index: int) -> None:
        """A pipeline will say which frames of camera `index` it has taken: keep within MAX_IN_FLIGHT of it."""
        with self._consumed_changed:
            self._consumed[index] = -math.inf

    def consumed(self, index: int, frame_time_s: float) -> None:
        """A pipeline has taken camera `index`'s frame stamped `frame_time_s` (and so all before it)."""
        with self._consumed_changed:
            last = self._consumed[index]
            if last is not None and frame_time_s > last:
                self._consumed[index] = frame_time_s
                self._consumed_changed.notify_all()

    def release(self, index: int) -> None:
        """The pipeline on camera `index` is gone: the simulation no longer waits for it."""
        with self._consumed_changed:
            self._consumed[index] = None
            self._consumed_changed.notify_all()

    def __enter__(self) -> SimCameras:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, index: int, streamer: H264RtpStreamer) -> None:
        stats, mount = self.stats[index], self.mount
        period = 1.0 / self.fps
        hold = (id(self), index)
        sent: deque[float] = deque(maxlen=MAX_IN_FLIGHT + 1)  # stamps of the last frames sent
        truth = self.truth_path(index).open("a", encoding="utf-8") if self.truth else None
        try:
            k = max(0, math.floor(mount.time_s(index) * self.fps) + 1) if mount.time_s(index) > 0 else 0
            while not self._stop.is_set():
                t = k * period
                mount.hold_at(hold, index, t)
                if not mount.wait_until(index, t, self._stop, timeout_s=0.5):
                    continue
                pose = mount.camera_pose(index, t)
                if pose is None:
                    k += 1
                    continue
                rendered = self.renderer.render(pose, mount.world_time_s(index, t))
                stamp = mount.clock_at(index, t)
                streamer.send(rendered.image, stamp)
                sent.append(stamp)
                if truth is not None:
                    truth.write(json.dumps(self._truth_line(index, stats.frames, t, stamp, pose, rendered.objects)))
                    truth.write("\n")
                    truth.flush()
                stats.frames += 1
                k += 1
                if mount.holds:
                    self._wait_for_consumer(index, sent)
                else:
                    behind = math.floor(mount.time_s(index) * self.fps) + 1 - k
                    if behind > 0:
                        stats.skipped += behind
                        k += behind
        except Exception as exc:  # a camera that dies says why; the simulator keeps flying
            stats.error = f"camera {index + 1}: {type(exc).__name__}: {exc}"
        finally:
            mount.hold_at(hold, index, None)
            streamer.close()
            if truth is not None:
                truth.close()

    def _wait_for_consumer(self, index: int, sent: deque[float]) -> None:
        """Until the pipeline, if one consumes this camera, is at most MAX_IN_FLIGHT frames behind."""
        if len(sent) <= MAX_IN_FLIGHT:
            return
        owed = sent[0]  # the oldest frame it may not still owe
        with self._consumed_changed:
            taken = self._consumed_changed.wait_for(
                lambda: self._stop.is_set() or self._consumed[index] is None or self._consumed[index] >= owed,
                CONSUMER_PATIENCE_S,
            )
        if not taken:
            self.stats[index].unconsumed += 1

    def _truth_line(self, index: int, frame: int, vehicle_s: float, stamp: float, pose, objects) -> dict:
        items = []
        for obj in objects:
            point = shapely.Point(obj.x_m, obj.y_m)
            entry = obj.to_json_dict()
            entry["zones"] = [name for name, shape in self._zones if shape.contains(point)]
            items.append(entry)
        return {
            "vehicle": index + 1,
            "frame": frame,
            "time_s": stamp,
            "sim_time_s": round(vehicle_s, 4),
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

"""What PX4 SIH's simulated vehicles truly do, for synthetic cameras riding on them.

PX4 started with PX4_SIMULATOR=sihsim streams HIL_STATE_QUATERNION (the simulated vehicle's
true position, attitude and velocity) from its SIH display link to UDP 19410+N, where
jMAVSim would show it. Its time_usec is 0, so each state takes the time of the
HIL_ACTUATOR_CONTROLS sent just before it on the same link, PX4's own lockstep clock
(its time_boot_ms elsewhere), a few milliseconds of it earlier at most. A :class:`Px4Truth` listens there
for one instance, and :class:`Px4Mount` gives cameras what `sitl.synthetic.cameras` asks of a fleet:
the vehicles' time, their poses at an instant, and a clock to stamp frames by.

PX4 does not wait for anyone: its cameras take the instants it reaches and skip those it
has run past. The SIH quadcopter has no gimbal; its camera looks straight down.
"""

from __future__ import annotations

import bisect
import math
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pymavlink.dialects.v20 import common as mavlink2

from vision.camera import CameraPose
from vision.pose import euler_from_quaternion

HIL_STATE_QUATERNION, HIL_ACTUATOR_CONTROLS = 115, 93
_KEEP = 200  # samples, about twenty seconds of the vehicle's own time


@dataclass(frozen=True)
class TrueState:
    time_s: float  # PX4's clock (time since its boot, lockstep)
    lat_deg: float
    lon_deg: float
    alt_amsl_m: float
    roll_deg: float
    pitch_deg: float
    yaw_deg: float
    velocity_ned_m_s: tuple[float, float, float]


class Px4Truth:
    """One PX4 SIH instance's true state from its display link, read on a thread of its own."""

    def __init__(self, instance: int, speed_factor: float, host: str = "127.0.0.1") -> None:
        self.port = 19410 + instance
        self.speed_factor = speed_factor
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, self.port))
        except OSError as exc:
            self._sock.close()
            raise OSError(f"UDP port {self.port} (PX4 instance {instance}'s true state) is taken: {exc}") from exc
        self._sock.settimeout(0.2)
        self._mav = mavlink2.MAVLink(None)
        self._mav.robust_parsing = True
        self._samples: list[TrueState] = []
        self._times: list[float] = []
        self._origin_s: float | None = None  # wall time of PX4's time zero, read off the first sample
        self._px4_s = -math.inf  # PX4's clock, from the last HIL_ACTUATOR_CONTROLS
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"px4-truth-{instance}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ what cameras ask
    def time_s(self) -> float:
        """PX4's time now: the last sample's, or -inf before any."""
        with self._arrived:
            return self._times[-1] if self._times else -math.inf

    def clock_at(self, px4_s: float) -> float:
        """`px4_s` of PX4's clock as a Unix time running at the vehicle's own pace, from when it was first heard."""
        origin = self._origin_s if self._origin_s is not None else time.time()
        return origin + px4_s

    def wait_until(self, px4_s: float, stop: threading.Event, timeout_s: float = 1.0) -> bool:
        with self._arrived:
            return (
                self._arrived.wait_for(
                    lambda: (self._times and self._times[-1] >= px4_s) or stop.is_set() or self._stop.is_set(),
                    timeout_s,
                )
                and bool(self._times)
                and self._times[-1] >= px4_s
            )

    def state_at(self, px4_s: float) -> TrueState | None:
        """The state at `px4_s`, between the samples around it (position and attitude linearly)."""
        with self._arrived:
            i = bisect.bisect_left(self._times, px4_s)
            if not self._samples or i >= len(self._samples):
                return self._samples[-1] if self._samples else None
            after = self._samples[i]
            if i == 0 or after.time_s == px4_s:
                return after
            before = self._samples[i - 1]
        f = (px4_s - before.time_s) / (after.time_s - before.time_s)

        def mix(a: float, b: float) -> float:
            return a + (b - a) * f

        def mix_angle(a: float, b: float) -> float:
            return a + ((b - a + 180.0) % 360.0 - 180.0) * f

        return TrueState(
            px4_s,
            mix(before.lat_deg, after.lat_deg),
            mix(before.lon_deg, after.lon_deg),
            mix(before.alt_amsl_m, after.alt_amsl_m),
            mix_angle(before.roll_deg, after.roll_deg),
            mix_angle(before.pitch_deg, after.pitch_deg),
            mix_angle(before.yaw_deg, after.yaw_deg),
            after.velocity_ned_m_s,
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sock.close()
        with self._arrived:
            self._arrived.notify_all()

    # ------------------------------------------------------------ reader thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            if len(data) < 18 or data[0] != 0xFD:
                continue
            msg_id = int.from_bytes(data[7:10], "little")
            if msg_id == HIL_ACTUATOR_CONTROLS:  # several times as frequent: only its time_usec, unparsed
                self._px4_s = int.from_bytes(data[10:18], "little") / 1e6
            elif msg_id == HIL_STATE_QUATERNION and math.isfinite(self._px4_s):
                for msg in self._mav.parse_buffer(data) or ():
                    if msg.get_type() == "HIL_STATE_QUATERNION":
                        self._add(msg)

    def _add(self, msg) -> None:
        roll, pitch, yaw = euler_from_quaternion(msg.attitude_quaternion)
        sample = TrueState(
            self._px4_s,
            msg.lat / 1e7,
            msg.lon / 1e7,
            msg.alt / 1000.0,
            roll,
            pitch,
            yaw,
            (msg.vx / 100.0, msg.vy / 100.0, msg.vz / 100.0),
        )
        with self._arrived:
            if self._times and sample.time_s <= self._times[-1]:
                return
            if self._origin_s is None:
                self._origin_s = time.time() - sample.time_s
            self._samples.append(sample)
            self._times.append(sample.time_s)
            if len(self._samples) > _KEEP:
                del self._samples[: -_KEEP // 2], self._times[: -_KEEP // 2]
            self._arrived.notify_all()


class Px4Mount:
    """Cameras on PX4 SIH vehicles: what `sitl.synthetic.cameras.SimCameras` asks of a fleet."""

    holds = False  # PX4 runs on whether or not a camera has taken its frame

    def __init__(self, truths: Sequence[Px4Truth], ground_amsl_m: float = 0.0) -> None:
        self.truths = list(truths)
        self.ground_amsl_m = ground_amsl_m

    @property
    def count(self) -> int:
        return len(self.truths)

    def time_s(self, index: int) -> float:
        return self.truths[index].time_s()

    def clock_at(self, index: int, vehicle_s: float) -> float:
        return self.truths[index].clock_at(vehicle_s)

    def hold_at(self, key: object, index: int, vehicle_s: float | None) -> None:
        """PX4 cannot be held: a camera that falls behind skips frames instead."""

    def wait_until(self, index: int, vehicle_s: float, stop: threading.Event, timeout_s: float = 1.0) -> bool:
        return self.truths[index].wait_until(vehicle_s, stop, timeout_s)

    def world_time_s(self, index: int, vehicle_s: float) -> float:
        return vehicle_s  # PX4's time since it booted: the traffic moves from the start

    def camera_pose(self, index: int, vehicle_s: float) -> CameraPose | None:
        state = self.truths[index].state_at(vehicle_s)
        if state is None:
            return None
        return CameraPose(
            lat_deg=state.lat_deg,
            lon_deg=state.lon_deg,
            alt_m=state.alt_amsl_m - self.ground_amsl_m,
            roll_deg=state.roll_deg,
            pitch_deg=state.pitch_deg,
            yaw_deg=state.yaw_deg,
            gimbal_pitch_deg=-90.0,
            gimbal_yaw_deg=0.0,
            gimbal_stabilized=True,
        )

    def close(self) -> None:
        for truth in self.truths:
            truth.close()

"""Where the camera was when a frame was taken: the vehicle's MAVLink telemetry, interpolated.

`MavlinkPose` reads a pymavlink connection on a background thread (plain pymavlink: this
runs on the companion computer, without MAVSDK or Qt) and keeps the last `keep_s` (10 s) of
GLOBAL_POSITION_INT, ATTITUDE and gimbal attitude (GIMBAL_DEVICE_ATTITUDE_STATUS, or
the older MOUNT_ORIENTATION), each stamped with the time it arrived on the companion's
clock, the clock that stamps the frames. `pose_at(frame_time_s)` interpolates them
(angles the short way round) and says None rather than guess: before the first fix, and
whenever the nearest sample of a stream is more than `stale_after_s` from the frame, so a
vehicle that stops talking gives None, not the last pose it sent.

Which URL
---------
A UDP port takes one listener: a second `udpin` on the ground station's port either fails
("address in use") or, if both set SO_REUSEADDR, silently takes the datagrams from the
first. So the companion needs a link of its own:

- our simulator (`sitl`): vehicle i also answers on UDP 14580+i (`SimVehicle.onboard_url`,
  `udpout:127.0.0.1:14580`); `MavlinkPose` sends a HEARTBEAT a second, which is how the
  simulator learns where to stream;
- PX4 SITL: PX4's own 14580+i is taken by its API link to MAVSDK, which answers one
  partner only; use its onboard camera link, `udpin:0.0.0.0:14030+i` (PX4 sends there from
  14280+i, rate-limited to 4 kB/s by default), or mavlink-router;
- a real drone: a serial port the autopilot runs MAVLink on in Onboard mode
  (`/dev/ttyTHS1,921600`), or mavlink-router fanning one link out to UDP ports.

Frames
------
GIMBAL_DEVICE_ATTITUDE_STATUS gives roll and pitch from the horizon and yaw from the nose
(YAW_IN_VEHICLE_FRAME) or from north (YAW_IN_EARTH_FRAME; without either flag, YAW_LOCK
means north), so a pose built from it is a `gimbal_stabilized` one; gimbal roll, which a
3-axis gimbal holds at zero, is dropped. Without any gimbal message the camera is taken
as fixed to the airframe at `mount_pitch_deg`/`mount_yaw_deg`, but only once the reader
has waited `gimbal_wait_s` (1 s of its own time) after the first fix: a gimbal's attitude
can arrive a little after the first position, and until then `pose_at` says None rather
than place a tilted camera's first frames as if it looked straight down. Once a gimbal has
been heard it must stay fresh like the rest.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymavlink import mavutil
from pymavlink.dialects.v20 import common as mavlink2

from vision.camera import CameraPose

EARTH_RADIUS_M = 6_371_000.0
# GIMBAL_DEVICE_FLAGS
_YAW_LOCK, _YAW_IN_VEHICLE_FRAME, _YAW_IN_EARTH_FRAME = 16, 32, 64
# Within ~0.6° of ±90° pitch, roll and yaw are ill-conditioned (MAVLink packs quaternions as
# float32, and a nadir camera's quaternion then splits into roll and yaw almost at random).
_GIMBAL_LOCK_COS = 1e-2
_MAX_SAMPLES = 2000  # per stream, whatever the rate: a 200 Hz ATTITUDE for 10 s
_POLL_S = 0.1  # the reader thread wakes at least this often, so close() returns promptly
_HEARTBEAT_S = 1.0


@dataclass(frozen=True)
class StaticPose:
    """A camera that does not move (a mast, a test): the same pose at every time.

    Like `MavlinkPose`, a `vision.geolocate.PoseSource`.
    """

    pose: CameraPose

    def pose_at(self, time_s: float) -> CameraPose:
        return self.pose


def euler_from_quaternion(q: Sequence[float]) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in degrees of a w, x, y, z quaternion, Z-Y-X as MAVLink's.

    At ±90° pitch (a camera looking straight down) roll and yaw turn about the same axis;
    near there the roll is taken as 0 and the whole turn given to yaw, read from where the
    frame's right-hand axis points, so the image's rotation about the vertical survives the
    singularity.
    """
    w, x, y, z = (float(c) for c in q)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if not norm > 0.0 or not math.isfinite(norm):
        raise ValueError(f"not a rotation quaternion: {tuple(q)}")
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    r20 = 2.0 * (x * z - w * y)
    pitch = math.asin(max(-1.0, min(1.0, -r20)))
    if math.cos(pitch) > _GIMBAL_LOCK_COS:
        roll = math.atan2(2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))
        yaw = math.atan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z))
    else:
        roll = 0.0
        r01, r11 = 2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z)
        yaw = math.atan2(-r01, r11)
    return math.degrees(roll), math.degrees(pitch), math.degrees(yaw)


def gimbal_yaw_is_earth_frame(flags: int) -> bool:
    """Whether GIMBAL_DEVICE_ATTITUDE_STATUS's yaw is from north (else from the nose)."""
    if flags & _YAW_IN_EARTH_FRAME:
        return True
    if flags & _YAW_IN_VEHICLE_FRAME:
        return False
    return bool(flags & _YAW_LOCK)


def _wrap_deg(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class _Sample:
    time_s: float
    values: tuple[float, ...]


class _Stream:
    """One telemetry stream's recent samples, oldest first; `angles` marks values that wrap at 360°."""

    def __init__(self, angles: tuple[bool, ...], keep_s: float) -> None:
        self.angles = angles
        self.keep_s = keep_s
        self.samples: list[_Sample] = []
        self._times: list[float] = []

    def add(self, time_s: float, values: tuple[float, ...]) -> None:
        if self._times and time_s < self._times[-1]:
            slot = bisect.bisect_right(self._times, time_s)  # the wall clock stepped back: keep them sorted
        else:
            slot = len(self._times)
        self._times.insert(slot, time_s)
        self.samples.insert(slot, _Sample(time_s, values))
        newest = self._times[-1]
        drop = bisect.bisect_left(self._times, newest - self.keep_s)
        drop = max(drop, len(self._times) - _MAX_SAMPLES)
        if drop > 0:
            del self._times[:drop], self.samples[:drop]

    def around(self, time_s: float, stale_after_s: float) -> tuple[_Sample, _Sample, float] | None:
        """The samples either side of `time_s` and how far between them it lies (0 … 1); None if stale.

        Before the first sample or after the last, both sides are that sample and the
        fraction is 0; the caller may extrapolate from it.
        """
        if not self._times:
            return None
        slot = bisect.bisect_right(self._times, time_s)
        if slot == 0:
            first = self.samples[0]
            return (first, first, 0.0) if first.time_s - time_s <= stale_after_s else None
        if slot == len(self._times):
            last = self.samples[-1]
            return (last, last, 0.0) if time_s - last.time_s <= stale_after_s else None
        before, after = self.samples[slot - 1], self.samples[slot]
        if min(time_s - before.time_s, after.time_s - time_s) > stale_after_s:
            return None
        span = after.time_s - before.time_s
        return before, after, (time_s - before.time_s) / span if span > 0 else 0.0

    def at(self, time_s: float, stale_after_s: float) -> tuple[float, ...] | None:
        found = self.around(time_s, stale_after_s)
        if found is None:
            return None
        before, after, fraction = found
        return tuple(
            _wrap_deg(a + fraction * _wrap_deg(b - a)) if is_angle else a + fraction * (b - a)
            for a, b, is_angle in zip(before.values, after.values, self.angles, strict=True)
        )


class PoseHistory:
    """Recent position, attitude and gimbal samples, and the camera pose at any time among them.

    Not thread-safe on its own; `MavlinkPose` holds a lock around it. Times are seconds on
    one clock (time.time() for MavlinkPose, so that frame times can be used directly).
    """

    def __init__(
        self,
        ground_amsl_m: float = 0.0,
        stale_after_s: float = 2.0,
        keep_s: float = 10.0,
        mount_pitch_deg: float = -90.0,
        mount_yaw_deg: float = 0.0,
    ) -> None:
        if stale_after_s <= 0 or keep_s <= 0:
            raise ValueError("the staleness limit and the history must be positive")
        self.ground_amsl_m = ground_amsl_m
        self.stale_after_s = stale_after_s
        self.mount_pitch_deg = mount_pitch_deg
        self.mount_yaw_deg = mount_yaw_deg
        # lat, lon, alt AMSL, then velocity north, east, down (m/s) for extrapolating past the last fix
        self._position = _Stream((False,) * 6, keep_s)
        self._attitude = _Stream((True, True, True), keep_s)  # roll, pitch, yaw
        self._gimbal = _Stream((True, True, False), keep_s)  # pitch, yaw, 1.0 if yaw is from north

    def add_position(
        self,
        time_s: float,
        lat_deg: float,
        lon_deg: float,
        alt_amsl_m: float,
        velocity_ned_m_s: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> None:
        self._position.add(time_s, (lat_deg, lon_deg, alt_amsl_m, *velocity_ned_m_s))

    def add_attitude(self, time_s: float, roll_deg: float, pitch_deg: float, yaw_deg: float) -> None:
        self._attitude.add(time_s, (roll_deg, pitch_deg, yaw_deg))

    def add_gimbal(self, time_s: float, pitch_deg: float, yaw_deg: float, yaw_from_north: bool = False) -> None:
        """Gimbal pitch from the horizon, yaw from the nose or, `yaw_from_north`, from north."""
        self._gimbal.add(time_s, (pitch_deg, yaw_deg, 1.0 if yaw_from_north else 0.0))

    @property
    def has_gimbal(self) -> bool:
        return bool(self._gimbal.samples)

    def pose_at(self, time_s: float) -> CameraPose | None:
        position = self._position_at(time_s)
        attitude = self._attitude.at(time_s, self.stale_after_s)
        if position is None or attitude is None:
            return None
        if not self.has_gimbal:
            return self._pose(position, attitude, self.mount_pitch_deg, self.mount_yaw_deg, stabilized=False)
        found = self._gimbal.around(time_s, self.stale_after_s)
        if found is None:
            return None
        before, after, fraction = found
        if before.values[2] != after.values[2]:
            # The yaw changed frames between the two: no sense in blending them, take the nearer.
            before = after = before if fraction < 0.5 else after
        gimbal_pitch = _wrap_deg(before.values[0] + fraction * _wrap_deg(after.values[0] - before.values[0]))
        gimbal_yaw = _wrap_deg(before.values[1] + fraction * _wrap_deg(after.values[1] - before.values[1]))
        if before.values[2]:
            gimbal_yaw = _wrap_deg(gimbal_yaw - attitude[2])
        return self._pose(position, attitude, gimbal_pitch, gimbal_yaw, stabilized=True)

    def _pose(
        self,
        position: tuple[float, ...],
        attitude: tuple[float, ...],
        gimbal_pitch_deg: float,
        gimbal_yaw_deg: float,
        stabilized: bool,
    ) -> CameraPose:
        lat, lon, alt = position
        roll, pitch, yaw = attitude
        return CameraPose(
            lat_deg=lat,
            lon_deg=lon,
            alt_m=alt - self.ground_amsl_m,
            roll_deg=roll,
            pitch_deg=pitch,
            yaw_deg=yaw,
            gimbal_pitch_deg=gimbal_pitch_deg,
            gimbal_yaw_deg=gimbal_yaw_deg,
            gimbal_stabilized=stabilized,
        )

    def _position_at(self, time_s: float) -> tuple[float, float, float] | None:
        found = self._position.around(time_s, self.stale_after_s)
        if found is None:
            return None
        before, after, fraction = found
        if before is after and time_s > before.time_s:
            # Past the last fix: carry on along its velocity (a frame is usually a little newer
            # than the telemetry, and a drone covers a metre in under 0.1 s).
            lat, lon, alt, north, east, down = before.values
            dt = time_s - before.time_s
            lat_out = lat + math.degrees(north * dt / EARTH_RADIUS_M)
            lon_out = lon + math.degrees(east * dt / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
            return lat_out, lon_out, alt - down * dt
        a, b = before.values, after.values
        return tuple(a[i] + fraction * (b[i] - a[i]) for i in range(3))


@dataclass(frozen=True)
class PoseStats:
    """How the link is doing: counts since start, and how long since anything arrived."""

    messages: int  # every MAVLink message parsed, from anyone
    positions: int
    attitudes: int
    gimbal_updates: int
    last_message_age_s: float | None  # None before the first
    system_id: int | None  # the vehicle followed


class MavlinkPose:
    """The camera pose of one vehicle from its MAVLink telemetry, read on a background thread.

    `url` is pymavlink's: 'udpin:0.0.0.0:14030', 'udpout:127.0.0.1:14580', 'tcp:host:5760',
    '/dev/ttyTHS1,921600'. `system_id` picks the vehicle on a shared link; None follows the
    first that sends a position. Use as a context manager, or call close().
    """

    def __init__(
        self,
        url: str,
        *,
        ground_amsl_m: float = 0.0,
        stale_after_s: float = 2.0,
        keep_s: float = 10.0,
        system_id: int | None = None,
        mount_pitch_deg: float = -90.0,
        mount_yaw_deg: float = 0.0,
        heartbeat: bool = True,
        clock: Callable[[], float] = time.time,
        boot_clock: Callable[[float], float] | None = None,
        gimbal_wait_s: float = 1.0,
    ) -> None:
        """`boot_clock`, when given, turns the vehicle's own time stamps (time_boot_ms) into the frames'
        clock, and samples are stamped by it instead of by their arrival: a simulation knows both clocks
        exactly, and its telemetry can arrive after the vehicle has moved on."""
        self.url = url
        self._history = PoseHistory(ground_amsl_m, stale_after_s, keep_s, mount_pitch_deg, mount_yaw_deg)
        self._lock = threading.Lock()
        self._clock = clock
        self._boot_clock = boot_clock
        self._system_id = system_id
        self._autopilot_component: int | None = None
        self._heartbeat = heartbeat
        self._gimbal_wait_s = gimbal_wait_s
        self._first_fix_monotonic_s: float | None = None
        self._counts = {"messages": 0, "positions": 0, "attitudes": 0, "gimbal_updates": 0}
        self._last_message_s: float | None = None
        self._stop = threading.Event()
        self._conn = mavutil.mavlink_connection(
            url, source_system=system_id or 1, source_component=mavlink2.MAV_COMP_ID_ONBOARD_COMPUTER
        )
        # Our own MAVLink 2 codec: mavutil's is chosen by the process-wide MAVLINK20 variable and
        # would switch it (os.environ) on the first v2 packet; claiming 2.0 stops that.
        self._conn.WIRE_PROTOCOL_VERSION = "2.0"
        self._mav = mavlink2.MAVLink(
            self._conn, srcSystem=system_id or 1, srcComponent=mavlink2.MAV_COMP_ID_ONBOARD_COMPUTER
        )
        self._mav.robust_parsing = True
        self._conn.mav = self._mav
        self._thread = threading.Thread(target=self._run, name=f"mavlink-pose {url}", daemon=True)
        self._thread.start()

    def __enter__(self) -> MavlinkPose:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def pose_at(self, time_s: float) -> CameraPose | None:
        """The camera at `time_s` (time.time() seconds, as frame times are), or None without fresh data."""
        with self._lock:
            first_fix = self._first_fix_monotonic_s
            if first_fix is None:
                return None
            if not self._history.has_gimbal and time.monotonic() - first_fix < self._gimbal_wait_s:
                return None  # a gimbal may still speak up: no guessing that the camera is fixed
            return self._history.pose_at(time_s)

    def stats(self) -> PoseStats:
        with self._lock:
            age = None if self._last_message_s is None else max(self._clock() - self._last_message_s, 0.0)
            return PoseStats(**self._counts, last_message_age_s=age, system_id=self._system_id)

    def close(self) -> None:
        """Stop the reader (within ~0.1 s) and close the connection."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        with contextlib.suppress(OSError):
            self._conn.close()

    # ------------------------------------------------------------ reader thread
    def _run(self) -> None:
        fd = getattr(self._conn, "fd", None)
        next_heartbeat = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self._heartbeat and now >= next_heartbeat:
                next_heartbeat = now + _HEARTBEAT_S
                self._send_heartbeat()
            if fd is not None:
                try:
                    readable, _, _ = select.select([fd], [], [], _POLL_S)
                except (OSError, ValueError):
                    return  # closed under us
                if not readable:
                    continue
            try:
                data = self._conn.recv(65535)  # mavudp returns "" when nothing is waiting
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(_POLL_S)  # a serial port unplugged, a TCP peer gone: mavutil reconnects
                continue
            if not data:
                if fd is None:
                    time.sleep(0.01)
                continue
            received_s = self._clock()
            for msg in self._mav.parse_buffer(bytes(data)) or ():
                self._on_message(msg, received_s)

    def _send_heartbeat(self) -> None:
        with contextlib.suppress(OSError):
            self._mav.heartbeat_send(
                mavlink2.MAV_TYPE_ONBOARD_CONTROLLER, mavlink2.MAV_AUTOPILOT_INVALID, 0, 0, mavlink2.MAV_STATE_ACTIVE
            )

    def _on_message(self, msg: Any, received_s: float) -> None:
        kind = msg.get_type()
        if kind == "BAD_DATA":
            return
        with self._lock:
            self._counts["messages"] += 1
            self._last_message_s = received_s
            system, component = msg.get_srcSystem(), msg.get_srcComponent()
            if kind == "GLOBAL_POSITION_INT" and self._system_id is None and (msg.lat or msg.lon):
                self._system_id = system
            if system != self._system_id:
                return
            if kind == "GLOBAL_POSITION_INT" and self._autopilot_component is None:
                self._autopilot_component = component
            history = self._history
            if self._boot_clock is not None and hasattr(msg, "time_boot_ms"):
                received_s = self._boot_clock(msg.time_boot_ms / 1000.0)
            if kind == "GLOBAL_POSITION_INT" and component == self._autopilot_component:
                if not (msg.lat or msg.lon):
                    return  # no fix yet
                velocity = (msg.vx / 100.0, msg.vy / 100.0, msg.vz / 100.0)
                history.add_position(received_s, msg.lat / 1e7, msg.lon / 1e7, msg.alt / 1000.0, velocity)
                self._counts["positions"] += 1
                if self._first_fix_monotonic_s is None:
                    self._first_fix_monotonic_s = time.monotonic()
            elif kind == "ATTITUDE" and component == self._autopilot_component:
                history.add_attitude(received_s, *(math.degrees(a) for a in (msg.roll, msg.pitch, msg.yaw)))
                self._counts["attitudes"] += 1
            elif kind == "GIMBAL_DEVICE_ATTITUDE_STATUS":
                try:
                    _, pitch, yaw = euler_from_quaternion(msg.q)
                except ValueError:
                    return  # NaN quaternion: the gimbal does not know its attitude
                history.add_gimbal(received_s, pitch, yaw, gimbal_yaw_is_earth_frame(msg.flags))
                self._counts["gimbal_updates"] += 1
            elif kind == "MOUNT_ORIENTATION":
                from_north = not math.isfinite(msg.yaw)
                yaw = msg.yaw_absolute if from_north else msg.yaw
                if math.isfinite(msg.pitch) and math.isfinite(yaw):
                    history.add_gimbal(received_s, msg.pitch, yaw, from_north)
                    self._counts["gimbal_updates"] += 1

"""What PX4 streams to a ground station, at PX4-like rates, and the messages it sends on request.

Stream intervals are in wall seconds: a ground station at speed factor 10 still wants
GLOBAL_POSITION_INT at 10 Hz, not 100; the timestamps inside (time_boot_ms, time_usec)
are simulated time, as PX4_SIM_SPEED_FACTOR makes them.
"""

from __future__ import annotations

import math
import time

from sitl.vehicles.autopilot import Autopilot
from sitl.vehicles.link import Link
from sitl.vehicles.model import Gimbal
from sitl.vehicles.physics import Body

HEARTBEAT, SYS_STATUS, GPS_RAW_INT, ATTITUDE, GLOBAL_POSITION_INT = 0, 1, 24, 30, 33
MISSION_CURRENT, VFR_HUD, BATTERY_STATUS, AUTOPILOT_VERSION = 42, 74, 147, 148
HOME_POSITION, EXTENDED_SYS_STATE, GIMBAL_DEVICE_ATTITUDE_STATUS = 242, 245, 285
# GIMBAL_DEVICE_FLAGS: a stabilised gimbal holds roll and pitch to the horizon; yaw follows the nose or is locked.
ROLL_LOCK, PITCH_LOCK, YAW_LOCK, YAW_IN_VEHICLE_FRAME, YAW_IN_EARTH_FRAME = 4, 8, 16, 32, 64
GIMBAL_DEVICE_ID = 1  # the gimbal hangs off the autopilot's own component, as PX4 reports a non-MAVLink gimbal

# PX4's onboard (API) link rates, but position and attitude at 10 Hz rather than PX4's 50: enough
# for MAVSDK and the cameras, and fifty simulated vehicles stay within two cores (docs/px4-conformance.md).
DEFAULT_INTERVAL_S = {
    HEARTBEAT: 1.0,
    GLOBAL_POSITION_INT: 0.1,
    ATTITUDE: 0.1,
    VFR_HUD: 0.1,
    SYS_STATUS: 0.2,
    EXTENDED_SYS_STATE: 0.2,
    GPS_RAW_INT: 0.2,
    BATTERY_STATUS: 2.0,
    MISSION_CURRENT: 1.0,
    HOME_POSITION: 2.0,
    GIMBAL_DEVICE_ATTITUDE_STATUS: 0.1,  # PX4 SIH has no gimbal; its onboard link would send 5 Hz with one
}
ON_REQUEST = frozenset(DEFAULT_INTERVAL_S) | {AUTOPILOT_VERSION}
MIN_INTERVAL_S = 0.005  # a 200 Hz cap, so a careless SET_MESSAGE_INTERVAL cannot hog the loop

GYRO, ACCEL, MAG, BARO, GPS, AHRS, BATTERY, PREARM = 0x1, 0x2, 0x4, 0x8, 0x20, 0x200000, 0x2000000, 0x10000000
CAPABILITIES = (
    0x1
    | 0x2
    | 0x4
    | 0x8  # MISSION_FLOAT, PARAM_FLOAT, MISSION_INT, COMMAND_INT
    | 0x80
    | 0x100
    | 0x40  # SET_POSITION_TARGET_LOCAL_NED, _GLOBAL_INT, SET_ATTITUDE_TARGET
    | 0x1000
    | 0x2000
    | 0x4000
    | 0x8000  # PARAM_ENCODE_BYTEWISE, MAVLINK2, MISSION_FENCE, MISSION_RALLY
)
PX4_VERSION = (1 << 24) | (15 << 16) | (0 << 8) | 255  # v1.15.0, FIRMWARE_VERSION_TYPE_OFFICIAL


def attitude_rad(body: Body) -> tuple[float, float, float]:
    """(roll, pitch, yaw) as ATTITUDE reports them: a quad noses down to fly forwards, yaw within ±π."""
    yaw = (body.yaw_rad + math.pi) % (2 * math.pi) - math.pi
    return 0.0, -0.02 * body.ground_speed_m_s, yaw


def quaternion(roll_rad: float, pitch_rad: float, yaw_rad: float) -> list[float]:
    """w, x, y, z of the Z-Y-X (yaw, pitch, roll) rotation, as MAVLink's attitude quaternions."""
    cr, sr = math.cos(roll_rad / 2), math.sin(roll_rad / 2)
    cp, sp = math.cos(pitch_rad / 2), math.sin(pitch_rad / 2)
    cy, sy = math.cos(yaw_rad / 2), math.sin(yaw_rad / 2)
    return [
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    ]


class Telemetry:
    def __init__(self, link: Link, autopilot: Autopilot) -> None:
        self._link = link
        self._ap = autopilot
        self.gimbal = Gimbal(pitch_deg=autopilot.config.gimbal_pitch_deg)  # replaced, never mutated
        self._interval_s = dict(DEFAULT_INTERVAL_S)
        self._text_id = 0
        now = time.monotonic()
        self._due_s = {msg_id: now for msg_id in self._interval_s}

    def set_interval(self, msg_id: int, interval_us: float) -> bool:
        """SET_MESSAGE_INTERVAL: -1 stops a stream, 0 restores its default."""
        if msg_id not in ON_REQUEST:
            return False
        if interval_us < 0:
            self._interval_s.pop(msg_id, None)
        elif interval_us == 0:
            if msg_id in DEFAULT_INTERVAL_S:
                self._interval_s[msg_id] = DEFAULT_INTERVAL_S[msg_id]
        else:
            self._interval_s[msg_id] = max(interval_us / 1e6, MIN_INTERVAL_S)
        self._due_s.setdefault(msg_id, time.monotonic())
        return True

    def poll(self) -> None:
        now = time.monotonic()
        for msg_id, interval in self._interval_s.items():
            if now >= self._due_s[msg_id]:
                self._due_s[msg_id] = max(self._due_s[msg_id] + interval, now)
                self.send(msg_id)

    def send(self, msg_id: int) -> bool:
        sender = getattr(self, f"_send_{msg_id}", None)
        if sender is None:
            return False
        sender()
        return True

    def statustext(self, severity: int, text: str) -> None:
        """As PX4 sends it: a text longer than 50 bytes goes in chunks that share a non-zero id."""
        data = text.encode()
        if len(data) <= 50:
            self._link.mav.statustext_send(severity, data)
            return
        self._text_id = self._text_id % 0xFFFF + 1
        for chunk, start in enumerate(range(0, len(data), 50)):
            self._link.mav.statustext_send(severity, data[start : start + 50], self._text_id, chunk)

    @property
    def _boot_ms(self) -> int:
        return int(self._ap.sim_time_s * 1000) & 0xFFFFFFFF

    def _position(self) -> tuple[int, int, float]:
        b = self._ap.body
        lat, lon = self._ap.frame.to_deg(b.x_m, b.y_m)
        return round(lat * 1e7), round(lon * 1e7), b.z_m

    def _send_0(self) -> None:
        ap = self._ap
        base_mode = 29 | (128 if ap.armed else 0)
        self._link.mav.heartbeat_send(2, 12, base_mode, ap.mode.custom_mode, 4 if ap.armed else 3)

    def _send_1(self) -> None:
        ap = self._ap
        present = GYRO | ACCEL | MAG | BARO | GPS | AHRS | BATTERY | PREARM
        health = present
        if not ap.gps_ok:
            health &= ~GPS
        if not ap.gps_ok or ap.battery_pct <= ap.config.low_battery_pct:
            health &= ~PREARM
        volts = self._volts()
        self._link.mav.sys_status_send(
            present, present, health, 250, round(volts * 1000), 1200 if ap.armed else 50, round(ap.battery_pct),
            0, 0, 0, 0, 0, 0,
        )  # fmt: skip

    def _volts(self) -> float:
        return 4 * (3.5 + 0.7 * self._ap.body.battery)

    def _send_24(self) -> None:
        ap = self._ap
        lat, lon, z = self._position()
        ok = ap.gps_ok
        b = ap.body
        cog = round(math.degrees(math.atan2(b.vx_m_s, b.vy_m_s)) % 360 * 100) if b.ground_speed_m_s > 0.2 else 65535
        self._link.mav.gps_raw_int_send(
            int(ap.sim_time_s * 1e6), 3 if ok else 0, lat if ok else 0, lon if ok else 0,
            round((z + ap.config.home_alt_amsl_m) * 1000) if ok else 0, 70 if ok else 65535, 100 if ok else 65535,
            round(b.ground_speed_m_s * 100), cog, 12 if ok else 0,
        )  # fmt: skip

    def _send_30(self) -> None:
        roll, pitch, yaw = attitude_rad(self._ap.body)
        self._link.mav.attitude_send(self._boot_ms, roll, pitch, yaw, 0.0, 0.0, 0.0)

    def _send_33(self) -> None:
        ap = self._ap
        b = ap.body
        lat, lon, z = self._position()
        self._link.mav.global_position_int_send(
            self._boot_ms, lat, lon, round((z + ap.config.home_alt_amsl_m) * 1000), round(z * 1000),
            round(b.vy_m_s * 100), round(b.vx_m_s * 100), round(-b.vz_m_s * 100),
            round(math.degrees(b.yaw_rad) % 360 * 100),
        )  # fmt: skip

    def _send_42(self) -> None:
        ap = self._ap
        total = len(ap.mission) if ap.mission else 0xFFFF
        seq = min(ap.mission_seq, len(ap.mission))
        in_mission = 1 if ap.mode.name == "MISSION" else 2
        self._link.mav.mission_current_send(seq, total, ap.mission_state, in_mission)

    def _send_74(self) -> None:
        ap = self._ap
        b = ap.body
        heading = round(math.degrees(b.yaw_rad)) % 360
        self._link.mav.vfr_hud_send(
            b.ground_speed_m_s, b.ground_speed_m_s, heading, 55 if ap.airborne else 0,
            b.z_m + ap.config.home_alt_amsl_m, b.vz_m_s,
        )  # fmt: skip

    def _send_147(self) -> None:
        ap = self._ap
        volts = self._volts()
        cells = [round(volts / 4 * 1000)] * 4 + [65535] * 6
        used_mah = round((1.0 - ap.body.battery) * 5000)
        remaining_s = round(ap.body.battery * ap.config.battery_capacity_s)
        self._link.mav.battery_status_send(
            0, 1, 1, 32767, cells, 1200 if ap.armed else 50, used_mah, -1, round(ap.battery_pct), remaining_s,
        )  # fmt: skip

    def _send_148(self) -> None:
        uid2 = [0] * 18
        self._link.mav.autopilot_version_send(
            CAPABILITIES, PX4_VERSION, 0, 0, 0, [0] * 8, [0] * 8, [0] * 8, 0x26AC, 0x0011, self._ap_uid(), uid2
        )

    def _ap_uid(self) -> int:
        return 0x4000_0000_0000 + self._link.system_id

    def _send_242(self) -> None:
        ap = self._ap
        lat, lon = ap.home_deg
        self._link.mav.home_position_send(
            round(lat * 1e7), round(lon * 1e7), round(ap.config.home_alt_amsl_m * 1000), 0.0, 0.0, 0.0,
            [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0, int(ap.sim_time_s * 1e6),
        )  # fmt: skip

    def _send_245(self) -> None:
        self._link.mav.extended_sys_state_send(0, int(self._ap.landed_state))

    def _send_285(self) -> None:
        gimbal = self.gimbal
        heading = attitude_rad(self._ap.body)[2]
        frame = YAW_LOCK | YAW_IN_EARTH_FRAME if gimbal.yaw_lock else YAW_IN_VEHICLE_FRAME
        q = quaternion(0.0, math.radians(gimbal.pitch_deg), math.radians(gimbal.yaw_deg))
        self._link.mav.gimbal_device_attitude_status_send(
            0, 0, self._boot_ms, ROLL_LOCK | PITCH_LOCK | frame, q, 0.0, 0.0, 0.0, 0,
            heading, math.nan, GIMBAL_DEVICE_ID,
        )  # fmt: skip

"""The simulator's value types: vehicle configuration, PX4 flight modes, state snapshots.

Time rule used everywhere in :mod:`sitl`: what happens in the world (flight, battery,
auto-disarm, GPS-loss hold) runs on *simulated* seconds, which pass `speed_factor` times
faster than wall time; what a ground station waits for on the link (protocol retries,
link outages, the post-upload mission check) runs on *wall* seconds, because the ground
station and the tests reason in wall time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vision.camera import CameraPose


@dataclass(frozen=True)
class VehicleConfig:
    """A multicopter's limits and failsafe settings; defaults give ~25 min at 10 m/s."""

    max_speed_m_s: float = 12.0
    cruise_speed_m_s: float = 10.0
    accel_m_s2: float = 3.0
    climb_m_s: float = 3.0
    descent_m_s: float = 1.5
    yaw_rate_deg_s: float = 90.0
    acceptance_radius_m: float = 2.0
    battery_capacity_s: float = 1500.0  # hover-equivalent seconds from full to empty
    wind_m_s: tuple[float, float] = (0.0, 0.0)  # (east, north) the air moves towards
    fence_action: str = "hold"  # "hold" or "return", PX4's GF_ACTION
    low_battery_pct: float = 15.0  # returns home below this (BAT_LOW_THR)
    emergency_battery_pct: float = 5.0  # lands where it is below this (BAT_EMERGEN_THR)
    takeoff_alt_m: float = 2.5  # MIS_TAKEOFF_ALT
    rtl_alt_m: float = 30.0  # RTL_RETURN_ALT
    home_alt_amsl_m: float = 10.0
    auto_disarm_s: float = 10.0  # disarms this long after arming without taking off (COM_DISARM_PRFLT)
    gps_loss_s: float = 5.0  # how long after the GPS goes silent PX4's estimator gives the position up and lands
    mission_check_s: float = 0.2  # wall seconds after an upload before the mission is checked (and startable)
    physics_hz: float = 50.0
    gimbal_pitch_deg: float = -90.0  # the camera gimbal's pitch from the horizon at start: straight down

    def __post_init__(self) -> None:
        if self.fence_action not in ("hold", "return"):
            raise ValueError(f"fence_action must be 'hold' or 'return', not {self.fence_action!r}")
        if self.battery_capacity_s <= 0 or self.max_speed_m_s <= 0:
            raise ValueError("battery capacity and max speed must be positive")
        if not -90.0 <= self.gimbal_pitch_deg <= 90.0:
            raise ValueError(f"gimbal pitch must be within ±90°, not {self.gimbal_pitch_deg}")


@dataclass(frozen=True)
class Gimbal:
    """Where the simulated 3-axis gimbal points the camera.

    Stabilised, as MAVLink's gimbal protocol reports it: pitch from the horizon (0 level,
    −90 straight down), no roll; yaw clockwise from the nose, or from north when
    `yaw_lock` holds it on a bearing while the vehicle turns.
    """

    pitch_deg: float = -90.0
    yaw_deg: float = 0.0
    yaw_lock: bool = False

    def yaw_from_nose_deg(self, heading_deg: float) -> float:
        yaw = self.yaw_deg - heading_deg if self.yaw_lock else self.yaw_deg
        return (yaw + 180.0) % 360.0 - 180.0


class Mode(enum.Enum):
    """PX4 flight modes as (main mode, sub mode) of the heartbeat's custom_mode."""

    MANUAL = (1, 0)
    ALTCTL = (2, 0)
    POSCTL = (3, 0)
    TAKEOFF = (4, 2)
    HOLD = (4, 3)
    MISSION = (4, 4)
    RTL = (4, 5)
    LAND = (4, 6)

    @property
    def custom_mode(self) -> int:
        main, sub = self.value
        return (main << 16) | (sub << 24)

    @property
    def px4_name(self) -> str:
        return {
            Mode.TAKEOFF: "AUTO.TAKEOFF",
            Mode.HOLD: "AUTO.LOITER",
            Mode.MISSION: "AUTO.MISSION",
            Mode.RTL: "AUTO.RTL",
            Mode.LAND: "AUTO.LAND",
        }.get(self, self.name)

    @classmethod
    def from_px4(cls, main: int, sub: int) -> Mode | None:
        for mode in cls:
            if mode.value[0] == main and (main != 4 or mode.value[1] == sub):
                return mode
        return None


class LandedState(enum.IntEnum):
    """MAV_LANDED_STATE, MAVLink's numbering (what real PX4 sends and MAVSDK decodes).

    The issue's notes list 2 as taking off and 3 as in air; MAVLink's common.xml and
    MAVSDK say MAV_LANDED_STATE_IN_AIR = 2 and MAV_LANDED_STATE_TAKEOFF = 3.
    """

    ON_GROUND = 1
    IN_AIR = 2
    TAKEOFF = 3
    LANDING = 4


@dataclass(frozen=True)
class SimState:
    """A snapshot of one simulated vehicle, safe to hand across threads."""

    lat_deg: float
    lon_deg: float
    rel_alt_m: float
    armed: bool
    landed_state: LandedState
    mode: str  # PX4's name: AUTO.LOITER, AUTO.MISSION, AUTO.RTL, …
    battery_pct: float
    mission_seq: int
    mission_count: int
    reached: tuple[int, ...]
    home: tuple[float, float]  # (lat_deg, lon_deg)
    ground_speed_m_s: float = 0.0
    heading_deg: float = 0.0
    gps_ok: bool = True
    sim_time_s: float = 0.0
    mission_finished: bool = False
    # Where the camera is, exactly as the telemetry reports it, for rendering what it sees.
    wall_time_s: float = 0.0  # time.time() when the snapshot was taken: the instant all of the below hold
    alt_amsl_m: float = 0.0
    roll_deg: float = 0.0
    pitch_deg: float = 0.0
    velocity_enu_m_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gimbal_pitch_deg: float = -90.0  # from the horizon
    gimbal_yaw_deg: float = 0.0  # from the nose, clockwise

    def camera_pose(self, ground_amsl_m: float = 0.0) -> CameraPose:
        """The camera at `wall_time_s`; `alt_m` is the height above a plane at `ground_amsl_m` (0: the sea)."""
        return CameraPose(
            lat_deg=self.lat_deg,
            lon_deg=self.lon_deg,
            alt_m=self.alt_amsl_m - ground_amsl_m,
            roll_deg=self.roll_deg,
            pitch_deg=self.pitch_deg,
            yaw_deg=self.heading_deg,
            gimbal_pitch_deg=self.gimbal_pitch_deg,
            gimbal_yaw_deg=self.gimbal_yaw_deg,
            gimbal_stabilized=True,
        )

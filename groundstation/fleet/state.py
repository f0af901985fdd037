"""What the fleet link tells its consumers: frozen vehicle snapshots, events and typed errors."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class LandedState(enum.StrEnum):
    ON_GROUND = "on_ground"
    TAKING_OFF = "taking_off"
    IN_AIR = "in_air"
    LANDING = "landing"
    UNKNOWN = "unknown"


class FlightMode(enum.StrEnum):
    """PX4's flight modes as MAVSDK names them; a str, so logs and run folders hold the word."""

    UNKNOWN = "unknown"
    READY = "ready"
    TAKEOFF = "takeoff"
    HOLD = "hold"
    MISSION = "mission"
    RETURN_TO_LAUNCH = "return_to_launch"
    LAND = "land"
    OFFBOARD = "offboard"
    FOLLOW_ME = "follow_me"
    MANUAL = "manual"
    ALTCTL = "altctl"
    POSCTL = "posctl"
    ACRO = "acro"
    STABILIZED = "stabilized"
    RATTITUDE = "rattitude"

    @classmethod
    def named(cls, name: str) -> FlightMode:
        """MAVSDK's enum name (MISSION) as a mode; one it does not know is UNKNOWN."""
        try:
            return cls(name.lower())
        except ValueError:
            return cls.UNKNOWN


class MissionState(enum.IntEnum):
    """MISSION_CURRENT's mission_state: PX4 says NO_MISSION until an uploaded mission has passed its checks."""

    UNKNOWN = 0
    NO_MISSION = 1
    NOT_STARTED = 2
    ACTIVE = 3
    PAUSED = 4
    COMPLETE = 5


class Reason(enum.StrEnum):
    """Why something happened to a vehicle; the same enum for events and errors."""

    CONNECTION_FAILED = "connection_failed"
    MISSION_REJECTED = "mission_rejected"
    FENCE_VIOLATION = "fence_violation"
    COMMAND_DENIED = "command_denied"
    TIMEOUT = "timeout"
    LINK_LOST = "link_lost"
    LINK_RESTORED = "link_restored"
    VERIFY_FAILED = "verify_failed"
    BATTERY_LOW = "battery_low"
    FAILSAFE = "failsafe"
    STATUS_TEXT = "status_text"
    MISSION_STARTED = "mission_started"
    MISSION_PROGRESS = "mission_progress"
    MISSION_COMPLETE = "mission_complete"
    LANDED = "landed"


class Severity(enum.IntEnum):
    """MAVLink's MAV_SEVERITY order, inverted so that a larger value is worse."""

    DEBUG = 0
    INFO = 1
    NOTICE = 2
    WARNING = 3
    ERROR = 4
    CRITICAL = 5


@dataclass(frozen=True)
class VehicleState:
    """One vehicle at one instant. Unknown numbers are NaN, unknown text is "unknown"."""

    vehicle: int  # index in the fleet, from 0
    system_id: int = 0
    lat_deg: float = math.nan
    lon_deg: float = math.nan
    abs_alt_m: float = math.nan
    rel_alt_m: float = math.nan
    heading_deg: float = math.nan
    ground_speed_m_s: float = math.nan
    battery_pct: float = math.nan
    flight_mode: FlightMode = FlightMode.UNKNOWN
    armed: bool = False
    landed_state: LandedState = LandedState.UNKNOWN
    mission_current: int = -1  # items done so far, as MAVSDK counts them (seq of the item being flown)
    mission_total: int = -1
    mission_reached: int = 0  # most items done since the upload; a DO_JUMP sends mission_current back, not this
    mission_state: MissionState = MissionState.UNKNOWN
    link_ok: bool = False
    monotonic_s: float = 0.0  # time.monotonic() of the last message from the vehicle

    @property
    def on_ground_disarmed(self) -> bool:
        return self.landed_state is LandedState.ON_GROUND and not self.armed

    @property
    def mission_finished(self) -> bool:
        return self.mission_total > 0 and self.mission_reached >= self.mission_total


@dataclass(frozen=True)
class FleetEvent:
    vehicle: int
    reason: Reason
    message: str  # names the vehicle: "vehicle 1: ..."
    monotonic_s: float  # time.monotonic()
    severity: Severity = Severity.INFO


class FleetError(Exception):
    """A request to one vehicle failed; `reason` says why, the message names the vehicle."""

    def __init__(self, vehicle: int, reason: Reason, message: str) -> None:
        self.vehicle = vehicle
        self.reason = reason
        self.detail = message
        super().__init__(f"{vehicle_name(vehicle)}: {message}")


def vehicle_name(vehicle: int) -> str:
    """Vehicles are numbered from 1 for people, from 0 in code."""
    return f"vehicle {vehicle + 1}"

"""The mission plan as QGroundControl and PX4 see it: raw MAVLink mission items,
geofence and rally points, all in degrees.

This is the model every `.plan` import and export goes through; planners build it
from their metric routes at the very end (see :mod:`missions.planners.output`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Command(enum.IntEnum):
    NAV_WAYPOINT = 16
    NAV_LOITER_UNLIM = 17
    NAV_LOITER_TIME = 19
    NAV_RETURN_TO_LAUNCH = 20
    NAV_LAND = 21
    NAV_TAKEOFF = 22
    NAV_VTOL_LAND = 85
    DO_JUMP = 177
    DO_CHANGE_SPEED = 178
    NAV_FENCE_POLYGON_VERTEX_INCLUSION = 5001
    NAV_FENCE_POLYGON_VERTEX_EXCLUSION = 5002
    NAV_FENCE_CIRCLE_INCLUSION = 5003
    NAV_FENCE_CIRCLE_EXCLUSION = 5004
    NAV_RALLY_POINT = 5100


class Frame(enum.IntEnum):
    GLOBAL = 0  # altitude above mean sea level
    MISSION = 2  # no position
    GLOBAL_RELATIVE_ALT = 3  # altitude above home
    GLOBAL_TERRAIN_ALT = 10


NAV_COMMANDS_WITH_POSITION = frozenset(
    {Command.NAV_WAYPOINT, Command.NAV_LOITER_UNLIM, Command.NAV_LOITER_TIME, Command.NAV_LAND, Command.NAV_TAKEOFF}
)


class MissionType(enum.IntEnum):
    MISSION = 0
    FENCE = 1
    RALLY = 2


@dataclass(frozen=True)
class RawItem:
    """One MISSION_ITEM_INT as MAVLink carries it (and MAVSDK's MissionRaw.MissionItem, field for field).

    Both ends of the link use it: the fleet link sends it, the simulator receives it. In
    global frames x and y are degrees × 1e7.
    """

    seq: int
    frame: int
    command: int
    current: int
    autocontinue: int
    param1: float
    param2: float
    param3: float
    param4: float
    x: int
    y: int
    z: float
    mission_type: int

    @property
    def lat_deg(self) -> float:
        return self.x / 1e7

    @property
    def lon_deg(self) -> float:
        return self.y / 1e7


@dataclass(frozen=True)
class Waypoint:
    lat_deg: float
    lon_deg: float
    alt_m: float


@dataclass(frozen=True)
class MissionItem:
    """One MAVLink mission item; params are param1..param4, then x (lat), y (lon), z (alt).

    Unknown commands are kept as they are, so a QGroundControl plan survives a round trip.
    """

    command: int
    frame: int
    params: tuple[float | None, ...]
    autocontinue: bool = True

    @classmethod
    def takeoff(cls, lat_deg: float, lon_deg: float, alt_m: float) -> MissionItem:
        return cls(Command.NAV_TAKEOFF, Frame.GLOBAL_RELATIVE_ALT, (0.0, 0.0, 0.0, None, lat_deg, lon_deg, alt_m))

    @classmethod
    def waypoint(cls, lat_deg: float, lon_deg: float, alt_m: float, hold_s: float = 0.0) -> MissionItem:
        return cls(Command.NAV_WAYPOINT, Frame.GLOBAL_RELATIVE_ALT, (hold_s, 0.0, 0.0, None, lat_deg, lon_deg, alt_m))

    @classmethod
    def change_speed(cls, speed_m_s: float) -> MissionItem:
        return cls(Command.DO_CHANGE_SPEED, Frame.MISSION, (1.0, speed_m_s, -1.0, 0.0, 0.0, 0.0, 0.0))

    @classmethod
    def jump(cls, to_jump_id: int, repeat: int) -> MissionItem:
        """Jump to an item by QGroundControl's doJumpId: its 1-based position in the mission."""
        return cls(Command.DO_JUMP, Frame.MISSION, (float(to_jump_id), float(repeat), 0.0, 0.0, 0.0, 0.0, 0.0))

    @classmethod
    def return_to_launch(cls) -> MissionItem:
        return cls(Command.NAV_RETURN_TO_LAUNCH, Frame.MISSION, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))

    @property
    def has_position(self) -> bool:
        return self.command in NAV_COMMANDS_WITH_POSITION and self.frame != Frame.MISSION

    @property
    def lat_deg(self) -> float | None:
        return self.params[4]

    @property
    def lon_deg(self) -> float | None:
        return self.params[5]

    @property
    def alt_m(self) -> float | None:
        return self.params[6]


@dataclass(frozen=True)
class FencePolygon:
    vertices: tuple[tuple[float, float], ...]  # (lat_deg, lon_deg), open ring
    inclusion: bool


@dataclass(frozen=True)
class FenceCircle:
    lat_deg: float
    lon_deg: float
    radius_m: float
    inclusion: bool


@dataclass(frozen=True)
class MissionPlan:
    """What one vehicle flies: the contents of one `.plan` file."""

    items: tuple[MissionItem, ...]
    home: Waypoint  # plannedHomePosition; alt_m above mean sea level
    fence_polygons: tuple[FencePolygon, ...] = ()
    fence_circles: tuple[FenceCircle, ...] = ()
    rally: tuple[Waypoint, ...] = ()
    cruise_speed_m_s: float = 15.0
    hover_speed_m_s: float = 5.0
    name: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def positions(self) -> list[Waypoint]:
        """The mission's positioned items, altitude as written in each item's frame."""
        return [
            Waypoint(i.lat_deg, i.lon_deg, i.alt_m if i.alt_m is not None else 0.0)
            for i in self.items
            if i.has_position and i.lat_deg is not None and i.lon_deg is not None
        ]

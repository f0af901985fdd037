"""A :class:`MissionPlan` as the raw MAVLink items MAVSDK's MissionRaw uploads, and the check
that what a vehicle hands back on download is what we sent.

The layout follows MAVSDK's own QGroundControl importer
(mavlink/MAVSDK src/mavsdk/plugins/mission_raw/mission_import.cpp): mission items numbered
from 0 without a home item, the first one current, x/y in 1e-7 degrees except in
MAV_FRAME_MISSION; fence vertices as 5001/5002 with param1 the polygon's vertex count and
circles as 5003/5004 with param1 the radius, both in MAV_FRAME_GLOBAL; rally points as 5100
relative to home. Unlike that importer we turn a DO_JUMP's target from QGroundControl's
1-based doJumpId into the 0-based sequence number PX4 jumps to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from missions.errors import InputError
from missions.plan import Command, Frame, MissionPlan, MissionType, RawItem

MAV_FRAME_GLOBAL = 0
MAV_FRAME_MISSION = 2
MAV_FRAME_GLOBAL_RELATIVE_ALT = 3

# PX4 may hand an item back in the _INT twin of the frame it was sent in.
_SAME_FRAME = {5: 0, 6: 3, 11: 10}


def to_mavsdk(item: RawItem):  # -> mavsdk.plugins.mission_raw.MissionItem
    from mavsdk.plugins.mission_raw import MissionItem

    return MissionItem(
        item.seq, item.frame, item.command, item.current, item.autocontinue,
        item.param1, item.param2, item.param3, item.param4, item.x, item.y, item.z, item.mission_type,
    )  # fmt: skip


def from_mavsdk(item) -> RawItem:
    return RawItem(
        int(item.seq), int(item.frame), int(item.command), int(item.current), int(item.autocontinue),
        float(item.param1), float(item.param2), float(item.param3), float(item.param4),
        int(item.x), int(item.y), float(item.z), int(item.mission_type),
    )  # fmt: skip


@dataclass(frozen=True)
class RawPlan:
    mission: tuple[RawItem, ...]
    fence: tuple[RawItem, ...]
    rally: tuple[RawItem, ...]


def raw_plan(plan: MissionPlan, source: str = "") -> RawPlan:
    return RawPlan(mission_items(plan, source), fence_items(plan), rally_items(plan))


def mission_items(plan: MissionPlan, source: str = "") -> tuple[RawItem, ...]:
    """The plan's mission as MAVLink items; a DO_JUMP whose target is not in the mission is an InputError."""
    n = len(plan.items)
    items = []
    for seq, item in enumerate(plan.items):
        p = [_param(v) for v in (*item.params, *[None] * 7)[:7]]
        if item.command == Command.DO_JUMP:
            jump_id = p[0]
            if not math.isfinite(jump_id) or jump_id != int(jump_id) or not 1 <= jump_id <= n:
                raise InputError(
                    source or plan.name or "plan",
                    f"DO_JUMP jumps to doJumpId {item.params[0]}, which is not an item of this {n}-item mission",
                    feature=f"mission item {seq + 1}",
                )
            p[0] = jump_id - 1.0
        items.append(
            RawItem(
                seq=seq,
                frame=int(item.frame),
                command=int(item.command),
                current=1 if seq == 0 else 0,
                autocontinue=1 if item.autocontinue else 0,
                param1=p[0],
                param2=p[1],
                param3=p[2],
                param4=p[3],
                x=_coordinate(item.params[4] if len(item.params) > 4 else None, item.frame),
                y=_coordinate(item.params[5] if len(item.params) > 5 else None, item.frame),
                z=p[6],
                mission_type=MissionType.MISSION,
            )
        )
    return tuple(items)


def fence_items(plan: MissionPlan) -> tuple[RawItem, ...]:
    items: list[tuple[int, float, float, float]] = []  # command, param1, lat, lon
    for polygon in plan.fence_polygons:
        command = _POLYGON_VERTEX[polygon.inclusion]
        items += [(command, float(len(polygon.vertices)), lat, lon) for lat, lon in polygon.vertices]
    for circle in plan.fence_circles:
        items.append((_CIRCLE[circle.inclusion], float(circle.radius_m), circle.lat_deg, circle.lon_deg))
    return tuple(
        _positioned(seq, MissionType.FENCE, MAV_FRAME_GLOBAL, command, lat, lon, 0.0, param1=param1)
        for seq, (command, param1, lat, lon) in enumerate(items)
    )


def rally_items(plan: MissionPlan) -> tuple[RawItem, ...]:
    return tuple(
        _positioned(seq, MissionType.RALLY, MAV_FRAME_GLOBAL_RELATIVE_ALT, Command.NAV_RALLY_POINT, *p_deg)
        for seq, p_deg in enumerate((p.lat_deg, p.lon_deg, float(p.alt_m)) for p in plan.rally)
    )


_POLYGON_VERTEX = {True: Command.NAV_FENCE_POLYGON_VERTEX_INCLUSION, False: Command.NAV_FENCE_POLYGON_VERTEX_EXCLUSION}
_CIRCLE = {True: Command.NAV_FENCE_CIRCLE_INCLUSION, False: Command.NAV_FENCE_CIRCLE_EXCLUSION}


def _positioned(
    seq: int, mission_type: int, frame: int, command: int, lat: float, lon: float, alt: float, param1: float = 0.0
) -> RawItem:
    current = 1 if seq == 0 else 0
    x, y = _e7(lat), _e7(lon)
    return RawItem(seq, frame, int(command), current, 1, param1, 0.0, 0.0, 0.0, x, y, alt, int(mission_type))


def jump_target_seq(item: RawItem) -> int | None:
    """The 0-based item a DO_JUMP goes to (its param1 after conversion)."""
    return int(item.param1) if item.command == Command.DO_JUMP else None


def differences(sent: Sequence[RawItem], received: Sequence[RawItem], what: str = "mission") -> list[str]:
    """How a download differs from an upload, one line per difference; empty when they agree.

    Floats travel as float32, so they are compared at float32 precision; an unset (NaN)
    parameter may come back as 0 because PX4 keeps only the parameters a command uses.
    `current` is not compared: the vehicle moves it as the mission runs.
    """
    if len(sent) != len(received):
        return [f"{what}: sent {len(sent)} items, vehicle holds {len(received)}"]
    out = []
    for a, b in zip(sent, received, strict=True):
        label = f"{what} item {a.seq + 1}"
        if a.command != b.command:
            out.append(f"{label}: command {a.command} came back as {b.command}")
            continue
        if _SAME_FRAME.get(a.frame, a.frame) != _SAME_FRAME.get(b.frame, b.frame):
            out.append(f"{label}: frame {a.frame} came back as {b.frame}")
        # PX4 hands fence vertices and rally points back with autocontinue 0 whatever was sent: they
        # are never flown, so the flag means nothing there.
        if a.mission_type == MissionType.MISSION and bool(a.autocontinue) != bool(b.autocontinue):
            out.append(f"{label}: autocontinue {a.autocontinue} came back as {b.autocontinue}")
        for name in ("param1", "param2", "param3", "param4"):
            if not _same_param(getattr(a, name), getattr(b, name)):
                out.append(f"{label}: {name} {getattr(a, name)} came back as {getattr(b, name)}")
        if abs(a.x - b.x) > 1 or abs(a.y - b.y) > 1:
            out.append(f"{label}: position ({a.x}, {a.y}) came back as ({b.x}, {b.y})")
        if not _same_float(a.z, b.z):
            out.append(f"{label}: z {a.z} came back as {b.z}")
    return out


def _same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-3)


def _same_param(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return (math.isnan(a) or a == 0.0) and (math.isnan(b) or b == 0.0)
    return _same_float(a, b)


def _param(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _coordinate(value: float | None, frame: int) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    return int(value) if frame == Frame.MISSION else _e7(value)


def _e7(deg: float) -> int:
    return round(deg * 1e7)

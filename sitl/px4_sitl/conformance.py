"""A scripted MAVLink session that records what a vehicle answers, to hold the simulator to PX4.

`record(...)` runs the same script against any vehicle — the built-in simulator or PX4 SITL —
and returns a flat, ordered `{key: value}` of what it observed: heartbeat fields per mode,
which messages come and how often once MAVSDK has asked for its streams, the COMMAND_ACK
of each command in each state (on the ground, armed, in a mission, returning), the mission
protocol for mission, fence and rally and what a download hands back, and the status texts
of every refusal. `compare(px4, sim, allowed)` lists the keys on which they differ and
which no reasoned entry of docs/px4-conformance.md allows.

Values are normalised to what a ground station relies on (a mode's name, a result's name,
a rate's order of magnitude), so a difference is one a ground station could notice.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pymavlink.dialects.v20 import common as mavlink2

from sitl.ground import GroundLink
from sitl.ports import free_port_block
from sitl.px4_sitl.session import (
    FLIGHT_EVENTS,
    MAVSDK_READS,
    PARAMS,
    RESULTS,
    M,
    Record,
    Session,
    Target,
    command_name,
    message_name,
    mode_name,
    number,
    param_id,
    rate_bucket,
)
from sitl.relay import UdpRelay


def record(target: Target, speed_factor: float = 1.0) -> Record:
    """The whole script against one vehicle (fresh, disarmed, on the ground at `target.home`)."""
    session_record: Record = {}
    session_record.update(record_mavsdk_streams(target))
    with GroundLink(target.port) as g:
        s = Session(g, target)
        try:
            s.wait("heartbeat", lambda ms: any(m.get_type() == "HEARTBEAT" for m in ms), 10.0)
            _script(s, speed_factor)
            s.put("script", "ran to the end")
        except TimeoutError as exc:  # what was recorded so far still tells where the two part
            s.put("script", f"stopped: {exc}")
        session_record.update(s.record)
    return session_record


def record_mavsdk_streams(target: Target, listen_s: float = 10.0) -> Record:
    """Connect MAVSDK (through a relay that watches both ways), subscribe to every telemetry stream as the
    fleet link does, and note what MAVSDK asked for, what the vehicle answered, and the rates that follow."""
    seen: list[tuple[str, float, object]] = []
    parsers = {"up": mavlink2.MAVLink(None), "down": mavlink2.MAVLink(None)}
    for p in parsers.values():
        p.robust_parsing = True

    def tap(direction: str, data: bytes) -> None:
        for m in parsers[direction].parse_buffer(data) or ():
            if m.get_type() != "BAD_DATA":
                seen.append((direction, time.monotonic(), m))

    async def listen(url: str) -> None:
        from mavsdk.asyncio import ComponentType, Configuration, Mavsdk
        from mavsdk.asyncio.plugins.mission_raw import MissionRawAsync
        from mavsdk.asyncio.plugins.telemetry import TelemetryAsync

        mavsdk = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
        try:
            await mavsdk.add_any_connection(url)
            system = await mavsdk.first_autopilot(timeout_s=10.0)
            if system is None:
                raise TimeoutError(f"conformance: MAVSDK heard no autopilot on {url}")
            t, m = TelemetryAsync(system), MissionRawAsync(system)
            # The streams the fleet link subscribes to (groundstation.fleet.telemetry), so MAVSDK asks for what it asks.
            streams = [t.subscribe_position(), t.subscribe_heading(), t.subscribe_velocity_ned(),
                       t.subscribe_battery(), t.subscribe_flight_mode(), t.subscribe_armed(),
                       t.subscribe_landed_state(), t.subscribe_health(), t.subscribe_status_text(),
                       m.subscribe_mission_progress()]  # fmt: skip
            tasks = [asyncio.create_task(_drain(stream)) for stream in streams]
            await asyncio.sleep(listen_s)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            mavsdk.destroy()

    with UdpRelay(target.port, free_port_block(1), tap=tap) as relay:
        asyncio.run(listen(relay.connect_url))
    out: Record = {}
    asked = [m for d, _, m in seen if d == "up" and m.get_type() in ("COMMAND_LONG", "COMMAND_INT")]
    acks = {m.command: m.result for d, _, m in seen if d == "down" and m.get_type() == "COMMAND_ACK"}
    for m in asked:
        key = f"mavsdk.{command_name(m.command)}"
        if m.command in (M.MAV_CMD_SET_MESSAGE_INTERVAL, M.MAV_CMD_REQUEST_MESSAGE):
            key += f"({message_name(int(m.param1))})"
        out[key] = RESULTS.get(acks.get(m.command, -1), "no answer") if m.command in acks else "no answer"
    last = [(t, m) for d, t, m in seen if d == "down" and m.get_srcComponent() == 1]
    if last:
        end = last[-1][0]
        window_s = listen_s * 0.6  # the streams MAVSDK asked for are in place by then
        counts = Counter(m.get_type() for t, m in last if t >= end - window_s)
        for name in MAVSDK_READS:
            if name != "STATUSTEXT":
                out[f"mavsdk.stream.{name}"] = rate_bucket(counts.get(name, 0) / window_s)
    return out


async def _drain(stream) -> None:
    async for _ in stream:
        pass


_INSTANT = {177, 178, 20}  # DO_JUMP, DO_CHANGE_SPEED, RETURN_TO_LAUNCH: done the moment they start


def items_reached(reports: list[int], mission: list[tuple]) -> list[int]:
    """The order of the items reached, as a ground station can rely on it.

    PX4 repeats each MISSION_ITEM_REACHED for a while, so repeats fold into one. And when an item
    is followed by items that are done the moment they start (a DO_JUMP spent, a speed change, the
    closing Return), the navigator publishes their results in one burst and MAVLink sends the
    latest it sees: whether the earlier one is told depends on the scheduler (PX4 752ecd3d said
    '0,2,3,2,3,5' in one run and '0,2,3,2,5' in the next). Such a report is left out on both sides.
    """
    in_order = [seq for i, seq in enumerate(reports) if i == 0 or seq != reports[i - 1]]
    kept = []
    for i, seq in enumerate(in_order):
        later = in_order[i + 1] if i + 1 < len(in_order) else None
        if later is not None and later > seq and all(item[1] in _INSTANT for item in mission[seq + 1 : later + 1]):
            continue
        kept.append(seq)
    return kept


def _script(s: Session, speed_factor: float) -> None:
    lat, lon = (round(v * 1e7) for v in s.t.home)
    d = 2700  # ~30 m of latitude in 1e-7 degrees
    r = 20 * d
    fence = [(0, 5001, 4, 0, 0, 0, lat + dy, lon + dx, 0) for dy, dx in ((-r, -r), (r, -r), (r, r), (-r, r))]
    fence.append((0, 5004, 15.0, 0, 0, 0, lat - 10 * d, lon - 10 * d, 0))
    rally = [(3, 5100, 0, 0, 0, 0, lat + d, lon, 20)]
    nan = math.nan
    good = [
        (3, 22, 0, 0, 0, nan, lat, lon, 10),
        (3, 16, 0, 0, 0, nan, lat + d, lon, 10),
        (2, 178, 1, 8, -1, 0, 0, 0, 0),
        (3, 16, 0, 0, 0, nan, lat + d, lon + d, 10),
        (2, 177, 1, 1, 0, 0, 0, 0, 0),  # DO_JUMP back to the first waypoint (seq 1), once
        (2, 20, 0, 0, 0, 0, 0, 0, 0),
    ]
    outside = [*good[:3], (3, 16, 0, 0, 0, nan, lat + d, lon + 40 * d, 10), *good[4:]]

    s.note_heartbeat("on the ground")
    for name in PARAMS:
        s.param(name)
    s.put("param.set RTL_RETURN_ALT", _param_set(s, "RTL_RETURN_ALT", 15.0))

    # The mission protocol, for each type: upload, download, clear.
    s.upload("mission.fence.upload", 1, fence)
    s.download("mission.fence.download", 1)
    s.upload("mission.rally.upload", 2, rally)
    s.download("mission.rally.download", 2)
    s.upload("mission.mission.upload", 0, good)
    s.download("mission.mission.download", 0)
    s.pump(1.5 / speed_factor + 1.0)  # the vehicle checks a fresh mission before it lets it start
    s.put("mission.mission.state after upload", _mission_state(s))
    s.upload("mission.empty mission.upload", 0, [])
    s.put("mission.mission.state when empty", _mission_state(s))

    # A mission with a waypoint outside the fence, on the ground and armed.
    s.upload("refusal.outside fence.upload", 0, outside)
    s.pump(1.5)
    s.put("refusal.outside fence.mission state", _mission_state(s))
    s.set_mode("refusal.outside fence.mode mission on the ground", "mission")
    s.command("refusal.outside fence.arm in mission mode", M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    s.back_on_the_ground()
    s.command("refusal.outside fence.arm in hold", M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    s.set_mode("refusal.outside fence.mode mission armed", "mission")
    s.command("refusal.outside fence.mission start armed", M.MAV_CMD_MISSION_START, 0, 0)
    s.put("refusal.outside fence.armed afterwards", s.armed)
    s.back_on_the_ground()
    s.command("refusal.outside fence.mission start on the ground", M.MAV_CMD_MISSION_START, 0, 0)
    s.put("refusal.outside fence.armed after mission start", s.armed)
    s.back_on_the_ground()

    # Commands on the ground, disarmed, with a good mission on board: each from the same state.
    s.upload("commands.on the ground.upload", 0, good)
    s.pump(1.5)
    for name, cmd, params in (
        ("takeoff", M.MAV_CMD_NAV_TAKEOFF, (nan,) * 7),
        ("land", M.MAV_CMD_NAV_LAND, (0, 0, 0, nan, nan, nan, nan)),
        ("return", M.MAV_CMD_NAV_RETURN_TO_LAUNCH, ()),
        ("disarm", M.MAV_CMD_COMPONENT_ARM_DISARM, (0,)),
        ("reposition", M.MAV_CMD_DO_REPOSITION, (-1, 1, 0, nan, s.t.home[0] + 1e-4, s.t.home[1], 20)),
        ("change speed", M.MAV_CMD_DO_CHANGE_SPEED, (1, 7, -1)),
        ("request home position", M.MAV_CMD_REQUEST_MESSAGE, (M.MAVLINK_MSG_ID_HOME_POSITION,)),
        ("request autopilot version", M.MAV_CMD_REQUEST_MESSAGE, (M.MAVLINK_MSG_ID_AUTOPILOT_VERSION,)),
        ("request mission current", M.MAV_CMD_REQUEST_MESSAGE, (M.MAVLINK_MSG_ID_MISSION_CURRENT,)),
        ("unknown command", 31010, ()),
        ("mission start", M.MAV_CMD_MISSION_START, (0, 0)),
    ):
        key = f"commands.on the ground.{name}"
        s.command(key, cmd, *params)
        s.put(f"{key}.then", f"{mode_name(s.heartbeat().custom_mode)}, {'armed' if s.armed else 'disarmed'}")
        s.back_on_the_ground()
    for mode in ("rtl", "land", "takeoff", "posctl", "mission"):
        key = f"commands.on the ground.mode {mode}"
        s.set_mode(key, mode)
        s.put(f"{key}.then", f"{mode_name(s.heartbeat().custom_mode)}, {'armed' if s.armed else 'disarmed'}")
        s.back_on_the_ground()

    # Armed on the ground.
    s.command("commands.armed.arm", M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    s.note_heartbeat("armed on the ground")
    s.command("commands.armed.arm again", M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    s.command("commands.armed.disarm", M.MAV_CMD_COMPONENT_ARM_DISARM, 0)
    s.command("commands.armed.arm once more", M.MAV_CMD_COMPONENT_ARM_DISARM, 1)
    # COM_DISARM_PRFLT: left idle, it disarms itself after 12 s; how much after depends on the load.
    deadline = time.monotonic() + 12.0 / speed_factor + 15.0
    while s.armed and time.monotonic() < deadline:
        s.pump(0.3)
    s.note_heartbeat("left idle after arming")
    s.back_on_the_ground()

    # A mission, uploaded afresh: start it, and probe it in flight.
    s.upload("commands.in a mission.upload", 0, good)
    s.pump(1.5)
    s.reached.clear()
    deadline = time.monotonic() + 10.0
    while s.command("commands.in a mission.start: arm", M.MAV_CMD_COMPONENT_ARM_DISARM, 1) != "ACCEPTED":
        if time.monotonic() > deadline:
            raise TimeoutError("conformance: the vehicle would not arm")
    while s.set_mode("commands.in a mission.start: mode mission", "mission") != "ACCEPTED":
        if time.monotonic() > deadline:
            raise TimeoutError("conformance: the vehicle would not start its mission")
    s.wait_state("climb", lambda m: m.relative_alt > 5000, 60.0, kind="GLOBAL_POSITION_INT")
    s.note_heartbeat("in a mission")
    for name, cmd, params in (
        ("arm", M.MAV_CMD_COMPONENT_ARM_DISARM, (1,)),
        ("disarm", M.MAV_CMD_COMPONENT_ARM_DISARM, (0,)),
        ("change speed", M.MAV_CMD_DO_CHANGE_SPEED, (1, 6, -1)),
    ):
        s.command(f"commands.in a mission.{name}", cmd, *params)
        s.put(f"commands.in a mission.{name}.then", mode_name(s.heartbeat().custom_mode))
    s.set_mode("commands.in a mission.mode hold", "hold")
    s.note_heartbeat("holding in the air")
    s.set_mode("commands.in a mission.mode mission (resume)", "mission")
    s.put("mission.mission.state in flight", _mission_state(s))
    s.wait("the last item", lambda _: bool(s.reached) and s.reached[-1] == len(good) - 1, 180.0)
    s.put("mission.mission.items reached", ",".join(map(str, items_reached(s.reached, good))))
    s.wait_mode("rtl", 60.0)
    s.note_heartbeat("returning")
    s.command("commands.returning.disarm", M.MAV_CMD_COMPONENT_ARM_DISARM, 0)
    s.set_mode("commands.returning.mode hold", "hold")
    s.command("commands.returning.return", M.MAV_CMD_NAV_RETURN_TO_LAUNCH)
    s.command("commands.returning.land", M.MAV_CMD_NAV_LAND, 0, 0, 0, nan, nan, nan, nan)
    s.note_heartbeat("landing")
    s.wait_state("landed", lambda m: m.landed_state == M.MAV_LANDED_STATE_ON_GROUND, 120.0)
    s.wait("disarmed", lambda _: not s.heartbeat().base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED, 30.0)
    s.note_heartbeat("landed")
    s.put("mission.mission.state after landing", _mission_state(s))
    for event in FLIGHT_EVENTS:
        s.put(f"texts.{event}", "said" if event in s.events_said else "never said")

    # PX4 sets home again where a disarmed vehicle stands; the fence below is drawn around the new home.
    lat, lon = _home_after_landing(s, (lat, lon))
    # A fence that leaves home outside, and a mission inside it.
    away = [(0, 5001, 4, 0, 0, 0, lat + dy, lon + dx, 0) for dy, dx in ((d, -r), (r, -r), (r, r), (d, r))]
    # What PX4 says of a fence it has just checked can come a second or two after its ACK.
    s.upload("refusal.home outside fence.fence upload", 1, away, settle_s=3.0)
    inside = [(3, 22, 0, 0, 0, nan, lat, lon, 10), (3, 16, 0, 0, 0, nan, lat + 3 * d, lon, 10), good[-1]]
    s.upload("refusal.home outside fence.mission upload", 0, inside)
    s.pump(1.5)
    s.put("refusal.home outside fence.mission state", _mission_state(s))
    s.command("refusal.home outside fence.mission start", M.MAV_CMD_MISSION_START, 0, 0)
    s.put("refusal.home outside fence.armed after mission start", s.armed)
    s.back_on_the_ground()


def _home_after_landing(s: Session, took_off_from: tuple[int, int]) -> tuple[int, int]:
    """Records whether home moved to where the vehicle landed; returns home (lat, lon in 1e-7 degrees)."""
    s.g.mav.command_long_send(s.t.system_id, 1, M.MAV_CMD_REQUEST_MESSAGE, 0, M.MAVLINK_MSG_ID_HOME_POSITION,
                              0, 0, 0, 0, 0, 0)  # fmt: skip
    home = here = None
    deadline = time.monotonic() + 5.0
    while (home is None or here is None) and time.monotonic() < deadline:
        for m in s.pump(0.2):
            if m.get_type() == "HOME_POSITION":
                home = (m.latitude, m.longitude)
            elif m.get_type() == "GLOBAL_POSITION_INT":
                here = (m.lat, m.lon)
    if home is None or here is None:
        s.put("mission.home after landing", "no HOME_POSITION" if home is None else "no GLOBAL_POSITION_INT")
        return took_off_from

    def metres(a: tuple[int, int], b: tuple[int, int]) -> float:
        return math.hypot(a[0] - b[0], (a[1] - b[1]) * math.cos(math.radians(a[0] * 1e-7))) * 0.0111

    moved = metres(here, took_off_from) > 5.0
    where = "where it landed" if metres(home, here) < 2.0 else "elsewhere"
    s.put("mission.home after landing", f"{where} (landed {'away from' if moved else 'at'} take-off)")
    return home


def _mission_state(s: Session) -> str:
    s.g.recv("MISSION_CURRENT", 0.0)  # drop the backlog's stale ones
    m = s.g.recv("MISSION_CURRENT", 3.0)
    if m is None:
        return "no MISSION_CURRENT"
    state = mavlink2.enums["MISSION_STATE"].get(m.mission_state)
    return f"{state.name if state else m.mission_state}, total {m.total}"


def _param_set(s: Session, name: str, value: float) -> str:
    s.g.mav.param_set_send(s.t.system_id, 1, name.encode(), value, M.MAV_PARAM_TYPE_REAL32)
    echo = s.g.recv("PARAM_VALUE", 2.0, where=lambda m: param_id(m) == name)
    return "no answer" if echo is None else f"echoed {number(echo.param_value)}"


def compare(px4: Record, sim: Record, allowed: Iterable[str]) -> list[str]:
    """Every key on which the two records differ and that no allowed pattern covers, as lines."""
    patterns = list(allowed)
    out = []
    for key in dict.fromkeys([*px4, *sim]):
        a, b = px4.get(key, "(not recorded)"), sim.get(key, "(not recorded)")
        if a != b and not any(fnmatch.fnmatchcase(key, p) for p in patterns):
            out.append(f"{key}: PX4 {a!r}, simulator {b!r}")
    return out


def _table(doc: Path) -> list[tuple[str, str]]:
    """(key pattern, why) for each row of the table in docs/px4-conformance.md: its first cell, in
    backticks, and its last."""
    rows = []
    for line in doc.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|.*\|\s*([^|]*?)\s*\|\s*$", line)
        if match:
            rows.append((match.group(1), match.group(2)))
    return rows


def allowed_differences(doc: Path) -> list[str]:
    """The key patterns of the documented differences."""
    return [pattern for pattern, _why in _table(doc)]


def intermittent_differences(doc: Path) -> list[str]:
    """The allowed patterns whose reason begins "At times": differences PX4 shows in some runs only."""
    return [pattern for pattern, why in _table(doc) if why.startswith("At times")]

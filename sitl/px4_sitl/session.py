"""One scripted MAVLink session's plumbing: the link to the vehicle, what it answers to a command,
a mode or a transfer, and the names a record stores them under (see sitl.px4_sitl.conformance)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymavlink.dialects.v20 import common as mavlink2

from sitl.ground import GroundLink

Record = dict[str, str]

M = mavlink2
RESULTS = {0: "ACCEPTED", 1: "TEMPORARILY_REJECTED", 2: "DENIED", 3: "UNSUPPORTED", 4: "FAILED", 5: "IN_PROGRESS"}
PX4_MODES = {
    (1, 0): "MANUAL", (2, 0): "ALTCTL", (3, 0): "POSCTL", (4, 1): "AUTO.READY", (4, 2): "AUTO.TAKEOFF",
    (4, 3): "AUTO.LOITER", (4, 4): "AUTO.MISSION", (4, 5): "AUTO.RTL", (4, 6): "AUTO.LAND", (5, 0): "ACRO",
    (6, 0): "OFFBOARD", (7, 0): "STABILIZED",
}  # fmt: skip
MODE = {"hold": (4, 3), "mission": (4, 4), "rtl": (4, 5), "land": (4, 6), "takeoff": (4, 2), "posctl": (3, 0)}
# What MAVSDK's telemetry, mission and action plugins read; rates of anything else do not matter to us.
MAVSDK_READS = (
    "HEARTBEAT", "SYS_STATUS", "GLOBAL_POSITION_INT", "ATTITUDE", "ATTITUDE_QUATERNION", "GPS_RAW_INT",
    "BATTERY_STATUS", "EXTENDED_SYS_STATE", "HOME_POSITION", "MISSION_CURRENT", "VFR_HUD", "STATUSTEXT",
)  # fmt: skip
PARAMS = ("MIS_TAKEOFF_ALT", "RTL_RETURN_ALT", "GF_ACTION", "NAV_DLL_ACT", "COM_DISARM_PRFLT", "BAT_LOW_THR")
TEXT_WINDOW_S = 0.6  # what a vehicle says within this long of a command belongs to its answer
# ... except what it says when the flight reaches a point, whenever that falls: recorded once, apart.
FLIGHT_EVENTS = ("Takeoff detected", "Landing detected")


def rate_bucket(hz: float) -> str:
    """A rate's order of magnitude, which is what a ground station notices."""
    for limit, name in (
        (0.05, "absent"),
        (0.75, "<0.75 Hz"),
        (3.0, "0.75-3 Hz"),
        (12.0, "3-12 Hz"),
        (40.0, "12-40 Hz"),
    ):
        if hz < limit:
            return name
    return ">40 Hz"


def mode_name(custom_mode: int) -> str:
    main, sub = (custom_mode >> 16) & 0xFF, (custom_mode >> 24) & 0xFF
    return PX4_MODES.get((main, sub if main == 4 else 0), f"({main},{sub})")


@dataclass(frozen=True)
class Target:
    """A vehicle to record: where it sends (the port MAVSDK would listen on) and its system id."""

    port: int
    system_id: int
    home: tuple[float, float]


class Session:
    """The script's helpers: commands with their answers and what the vehicle said meanwhile."""

    def __init__(self, ground: GroundLink, target: Target) -> None:
        self.g = ground
        self.t = target
        self.record: Record = {}
        self.last_heartbeat = None
        self.reached: list[int] = []  # every MISSION_ITEM_REACHED heard, in order
        self.events_said: set[str] = set()
        self._heartbeat_due = 0.0

    def put(self, key: str, value: object) -> None:
        self.record[key] = str(value)

    # -- listening ---------------------------------------------------------------------------
    def pump(self, seconds: float) -> list:
        # A ground station's heartbeat, once a second: PX4 sends STATUSTEXT only to a link it hears one on.
        if time.monotonic() >= self._heartbeat_due and self.g.peer is not None:
            self._heartbeat_due = time.monotonic() + 1.0
            self.g.mav.heartbeat_send(M.MAV_TYPE_GCS, M.MAV_AUTOPILOT_INVALID, 0, 0, M.MAV_STATE_ACTIVE)
        messages = [m for m in self.g.collect(seconds) if m.get_srcSystem() == self.t.system_id]
        for m in messages:
            if m.get_type() == "HEARTBEAT" and m.get_srcComponent() == 1:
                self.last_heartbeat = m
            elif m.get_type() == "MISSION_ITEM_REACHED":
                self.reached.append(m.seq)
            elif m.get_type() == "STATUSTEXT":
                self.events_said.update(e for e in FLIGHT_EVENTS if e in Texts.text_of(m))
        return messages

    def wait(self, what: str, predicate: Callable[[list], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.pump(0.3)):
                return
        raise TimeoutError(f"conformance: no {what} within {timeout_s:g} s")

    def heartbeat(self):
        self.wait("heartbeat", lambda ms: any(m.get_type() == "HEARTBEAT" for m in ms), 5.0)
        return self.last_heartbeat

    def wait_mode(self, mode: str, timeout_s: float) -> None:
        want = PX4_MODES[MODE[mode]]
        self.wait(f"mode {want}", lambda _: mode_name(self.heartbeat().custom_mode) == want, timeout_s)

    def wait_state(self, what: str, predicate: Callable, timeout_s: float, kind: str = "EXTENDED_SYS_STATE") -> None:
        self.wait(what, lambda ms: any(m.get_type() == kind and predicate(m) for m in ms), timeout_s)

    # -- speaking -------------------------------------------------------------------------------
    def command(self, key: str, command: int, *params: float) -> str:
        """COMMAND_LONG; records its result and what the vehicle said in reply under `key`."""
        p = [*params, *([0.0] * (7 - len(params)))]
        self.g.mav.command_long_send(self.t.system_id, 1, command, 0, *p)
        ack, texts = None, Texts()
        deadline = time.monotonic() + TEXT_WINDOW_S
        while time.monotonic() < deadline:
            for m in self.pump(0.1):
                if m.get_type() == "COMMAND_ACK" and m.command == command and ack is None:
                    ack = m
                elif m.get_type() == "STATUSTEXT":
                    texts.add(m)
        result = "no answer" if ack is None else RESULTS.get(ack.result, str(ack.result))
        self.put(key, result)
        if texts:
            self.put(f"{key}.says", str(texts))
        return result

    @property
    def armed(self) -> bool:
        return bool(self.heartbeat().base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED)

    def back_on_the_ground(self) -> None:
        """Disarmed on the ground in Hold, whatever the last command did: landed first if it took off."""
        if self.armed:
            self.g.mav.command_long_send(self.t.system_id, 1, M.MAV_CMD_NAV_LAND, 0, 0, 0, 0, math.nan, math.nan,
                                         math.nan, math.nan)  # fmt: skip
            self.wait_state("landed", lambda m: m.landed_state == M.MAV_LANDED_STATE_ON_GROUND, 120.0)
            deadline = time.monotonic() + 30.0
            while self.armed and time.monotonic() < deadline:
                self.g.mav.command_long_send(
                    self.t.system_id, 1, M.MAV_CMD_COMPONENT_ARM_DISARM, 0, 0, 0, 0, 0, 0, 0, 0
                )
                self.pump(0.5)
        main, sub = MODE["hold"]
        self.g.mav.command_long_send(self.t.system_id, 1, M.MAV_CMD_DO_SET_MODE, 0,
                                     M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, main, sub, 0, 0, 0, 0)  # fmt: skip
        self.wait_mode("hold", 10.0)

    def set_mode(self, key: str, mode: str) -> str:
        main, sub = MODE[mode]
        return self.command(key, M.MAV_CMD_DO_SET_MODE, M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, main, sub)

    def upload(self, key: str, mission_type: int, items: list[tuple], settle_s: float = 0.5) -> None:
        """MISSION_COUNT and then every item the vehicle asks for; records how it asked, its ACK and
        what it said until `settle_s` after the ACK."""
        self.g.mav.mission_count_send(self.t.system_id, 1, len(items), mission_type)
        asked_with, result, texts = set(), "no answer", Texts()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and result == "no answer":
            for m in self.pump(0.05):
                kind = m.get_type()
                if kind in ("MISSION_REQUEST_INT", "MISSION_REQUEST") and m.mission_type == mission_type:
                    asked_with.add(kind)
                    frame, cmd, p1, p2, p3, p4, x, y, z = items[m.seq]
                    self.g.mav.mission_item_int_send(
                        self.t.system_id, 1, m.seq, frame, cmd, 1 if m.seq == 0 else 0, 1, p1, p2, p3, p4, x, y, z,
                        mission_type,
                    )  # fmt: skip
                elif kind == "MISSION_ACK" and m.mission_type == mission_type:
                    result = mavlink2.enums["MAV_MISSION_RESULT"][m.type].name
                elif kind == "STATUSTEXT":
                    texts.add(m)
        settled = time.monotonic() + settle_s
        while time.monotonic() < settled:  # what the vehicle says about a mission it has just checked
            for m in self.pump(min(0.3, max(0.0, settled - time.monotonic()))):
                if m.get_type() == "STATUSTEXT":
                    texts.add(m)
        self.put(f"{key}.ack", result)
        if items:
            self.put(f"{key}.asks with", "+".join(sorted(asked_with)) or "nothing")
        if texts:
            self.put(f"{key}.says", str(texts))

    def download(self, key: str, mission_type: int) -> None:
        self.g.mav.mission_request_list_send(self.t.system_id, 1, mission_type)
        count = self.g.recv("MISSION_COUNT", 3.0, where=lambda m: m.mission_type == mission_type)
        if count is None:
            self.put(f"{key}.count", "no answer")
            return
        self.put(f"{key}.count", count.count)
        for seq in range(count.count):
            self.g.mav.mission_request_int_send(self.t.system_id, 1, seq, mission_type)
            item = self.g.recv("MISSION_ITEM_INT", 3.0, where=lambda m, s=seq: m.seq == s)
            if item is None:
                self.put(f"{key}.item {seq}", "no answer")
                continue
            params = ",".join(number(v) for v in (item.param1, item.param2, item.param3, item.param4))
            where = f"{item.x},{item.y},{number(item.z)}"
            what = f"frame {item.frame} command {item.command} autocontinue {item.autocontinue}"
            self.put(f"{key}.item {seq}", f"{what} params {params} at {where}")
        self.g.mav.mission_ack_send(self.t.system_id, 1, 0, mission_type)

    def param(self, name: str) -> None:
        self.g.mav.param_request_read_send(self.t.system_id, 1, name.encode(), -1)
        value = self.g.recv("PARAM_VALUE", 2.0, where=lambda m: param_id(m) == name)
        if value is None:
            self.put(f"param.{name}", "no answer")
            return
        raw = value.param_value
        if value.param_type == M.MAV_PARAM_TYPE_INT32:  # PX4 sends integers byte-wise
            import struct

            raw = struct.unpack("<i", struct.pack("<f", raw))[0]
        self.put(f"param.{name}", number(raw))

    def note_heartbeat(self, state: str) -> None:
        hb = self.heartbeat()
        self.put(f"heartbeat.{state}.mode", mode_name(hb.custom_mode))
        self.put(f"heartbeat.{state}.armed", bool(hb.base_mode & M.MAV_MODE_FLAG_SAFETY_ARMED))
        self.put(f"heartbeat.{state}.custom mode flag", bool(hb.base_mode & M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED))
        self.put(f"heartbeat.{state}.system status", mavlink2.enums["MAV_STATE"][hb.system_status].name)
        self.put(f"heartbeat.{state}.type", f"{hb.type}/{hb.autopilot}")


class Texts:
    """STATUSTEXTs as sentences: a long one comes in chunks of 50 characters that share an id."""

    def __init__(self) -> None:
        self._parts: dict[object, list[str]] = {}

    @staticmethod
    def text_of(m) -> str:
        text = m.text.decode(errors="replace") if isinstance(m.text, bytes) else str(m.text)
        return text.rstrip("\x00")

    def add(self, m) -> None:
        text = self.text_of(m)
        if text.strip() in FLIGHT_EVENTS:
            return
        key = getattr(m, "id", 0) or object()  # id 0: a text of its own
        self._parts.setdefault(key, []).append(text)

    def __bool__(self) -> bool:
        return bool(self._parts)

    def __str__(self) -> str:
        return " | ".join(s for s in ("".join(p).strip() for p in self._parts.values()) if s)


def param_id(m) -> str:
    pid = m.param_id.decode(errors="replace") if isinstance(m.param_id, bytes) else str(m.param_id)
    return pid.rstrip("\x00")


def number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{float(value):.6g}"


def command_name(command: int) -> str:
    entry = mavlink2.enums["MAV_CMD"].get(command)
    return entry.name.removeprefix("MAV_CMD_") if entry else str(command)


def message_name(msg_id: int) -> str:
    cls = mavlink2.mavlink_map.get(msg_id)
    return cls.msgname if cls is not None else str(msg_id)

"""The MAVLink mission protocol, vehicle side, for missions, fences and rally points.

Upload: MISSION_COUNT → MISSION_REQUEST_INT(seq) → MISSION_ITEM_INT … → MISSION_ACK.
The vehicle drives an upload, so it re-requests an item that does not come within
`RETRY_S` wall seconds and, as PX4 does, gives up `TIMEOUT_S` after it last heard the
ground station with the text "Operation timeout" and no MISSION_ACK (an ACK would end the
ground station's next transfer). A download is driven by the ground station, which retries
on its own; the vehicle only answers.
"""

from __future__ import annotations

import time

from missions.plan import RawItem
from sitl.vehicles.autopilot import Autopilot
from sitl.vehicles.link import Link

RETRY_S = 0.25  # PX4's MAVLINK_MISSION_RETRY_TIMEOUT_DEFAULT
TIMEOUT_S = 5.0  # PX4's MAVLINK_MISSION_PROTOCOL_TIMEOUT_DEFAULT
MISSION_ACCEPTED, MISSION_ERROR, MISSION_UNSUPPORTED, MISSION_INVALID_SEQUENCE = 0, 1, 3, 13
CRITICAL, ERROR = 2, 3  # MAV_SEVERITY
FENCE = 1
_INT_FRAME = {0: 5, 3: 6, 10: 11}  # GLOBAL, GLOBAL_RELATIVE_ALT, GLOBAL_TERRAIN_ALT


def _raw(msg, scaled: bool) -> RawItem:
    x, y = (int(msg.x), int(msg.y)) if scaled else (round(msg.x * 1e7), round(msg.y * 1e7))
    return RawItem(
        msg.seq,
        msg.frame,
        msg.command,
        msg.current,
        msg.autocontinue,
        msg.param1,
        msg.param2,
        msg.param3,
        msg.param4,
        x,
        y,
        msg.z,
        msg.mission_type,
    )


class MissionTransfer:
    def __init__(self, link: Link, autopilot: Autopilot) -> None:
        self._link = link
        self._ap = autopilot
        self._type: int | None = None  # mission type of the upload in progress
        self._count = 0
        self._items: list[RawItem] = []
        self._partner = (0, 0)
        self._last_request_s = 0.0
        self._last_heard_s = 0.0
        self._finished: dict[int, tuple[int, int]] = {}  # type -> (count, result) of the last upload
        # PX4 asks with MISSION_REQUEST until the ground station shows it speaks the _INT messages.
        self._int_mode = False

    def stored(self, mission_type: int) -> list[RawItem]:
        ap = self._ap
        return {0: ap.mission, 1: ap.fence_items, 2: ap.rally}.get(mission_type, [])

    def handle(self, msg) -> bool:
        kind = msg.get_type()
        handler = {
            "MISSION_COUNT": self._on_count,
            "MISSION_ITEM_INT": lambda m: self._on_item(m, scaled=True),
            "MISSION_ITEM": lambda m: self._on_item(m, scaled=False),
            "MISSION_REQUEST_LIST": self._on_request_list,
            "MISSION_REQUEST_INT": self._on_request,
            "MISSION_REQUEST": self._on_request,
            "MISSION_CLEAR_ALL": self._on_clear,
            "MISSION_SET_CURRENT": self._on_set_current,
            "MISSION_ACK": self._on_ack,
        }.get(kind)
        if handler is None:
            return False
        handler(msg)
        return True

    def poll(self) -> None:
        now = time.monotonic()
        if self._type is None or now - self._last_request_s < RETRY_S:
            return
        if now - self._last_heard_s > TIMEOUT_S:
            self._link.mav.statustext_send(CRITICAL, b"Operation timeout")
            self._type = None
            return
        self._request(len(self._items))

    # ------------------------------------------------------------ upload
    def _on_count(self, msg) -> None:
        self._partner = (msg.get_srcSystem(), msg.get_srcComponent())
        self._finished.pop(msg.mission_type, None)
        if msg.count == 0:
            self._type = None
            self._complete(msg.mission_type, [])
            return
        self._type, self._count, self._items = msg.mission_type, msg.count, []
        self._last_heard_s = time.monotonic()
        self._request(0)

    def _request(self, seq: int) -> None:
        self._last_request_s = time.monotonic()
        send = self._link.mav.mission_request_int_send if self._int_mode else self._link.mav.mission_request_send
        send(*self._partner, seq, self._type)

    def _on_item(self, msg, scaled: bool) -> None:
        self._int_mode = self._int_mode or scaled
        if self._type is None or msg.mission_type != self._type:
            done = self._finished.get(msg.mission_type)
            if done and msg.seq == done[0] - 1:  # our ACK was lost and the last item came again
                self._ack(msg.mission_type, done[1])
            return
        self._last_heard_s = time.monotonic()
        expected = len(self._items)
        if msg.seq != expected:
            self._request(expected)
            return
        self._items.append(_raw(msg, scaled))
        if len(self._items) < self._count:
            self._request(len(self._items))
            return
        mission_type, self._type = self._type, None
        self._complete(mission_type, self._items)

    def _on_ack(self, msg) -> None:
        """A ground station that answers MISSION_REQUEST with MISSION_ACK(UNSUPPORTED) (MAVSDK does) wants
        the _INT messages: as PX4 does, ask again for the same item that way."""
        if msg.type == MISSION_UNSUPPORTED and self._type is not None and msg.mission_type == self._type:
            self._int_mode = True
            self._request(len(self._items))

    def _complete(self, mission_type: int, items: list[RawItem]) -> None:
        problem = self._ap.accept_upload(mission_type, items, time.monotonic())
        result = MISSION_ACCEPTED if problem is None else MISSION_ERROR
        if problem:
            self._link.mav.statustext_send(ERROR, problem.encode()[:50])
        self._finished[mission_type] = (len(items), result)
        self._ack(mission_type, result)

    def _ack(self, mission_type: int, result: int) -> None:
        self._link.mav.mission_ack_send(*self._partner, result, mission_type)

    # ------------------------------------------------------------ download and the rest
    def _on_request_list(self, msg) -> None:
        self._partner = (msg.get_srcSystem(), msg.get_srcComponent())
        self._link.mav.mission_count_send(*self._partner, len(self.stored(msg.mission_type)), msg.mission_type)

    def _on_request(self, msg) -> None:
        self._partner = (msg.get_srcSystem(), msg.get_srcComponent())
        self._int_mode = self._int_mode or msg.get_type() == "MISSION_REQUEST_INT"
        items = self.stored(msg.mission_type)
        if not 0 <= msg.seq < len(items):
            self._ack(msg.mission_type, MISSION_INVALID_SEQUENCE)
            return
        i = items[msg.seq]
        current = 1 if msg.mission_type == 0 and msg.seq == self._ap.mission_seq else 0
        # PX4 hands positions back in the _INT twin of their frame, and fence vertices with autocontinue 0.
        frame = _INT_FRAME.get(i.frame, i.frame)
        autocontinue = 0 if msg.mission_type == FENCE else i.autocontinue
        self._link.mav.mission_item_int_send(
            *self._partner, i.seq, frame, i.command, current, autocontinue,
            i.param1, i.param2, i.param3, i.param4, i.x, i.y, i.z, i.mission_type,
        )  # fmt: skip

    def _on_clear(self, msg) -> None:
        self._partner = (msg.get_srcSystem(), msg.get_srcComponent())
        self._ap.clear(msg.mission_type)
        self._ack(msg.mission_type, MISSION_ACCEPTED)

    def _on_set_current(self, msg) -> None:
        self._ap.nav.set_current(msg.seq)

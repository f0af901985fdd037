"""The MAVLink mission protocol, vehicle side, for missions, fences and rally points.

Upload: MISSION_COUNT → MISSION_REQUEST_INT(seq) → MISSION_ITEM_INT … → MISSION_ACK.
The vehicle drives an upload, so it re-requests an item that does not come within
`RETRY_S` wall seconds and gives up after `MAX_RETRIES`. A download is driven by the
ground station, which retries on its own; the vehicle only answers.
"""

from __future__ import annotations

import time

from missions.plan import RawItem
from sitl.autopilot import Autopilot
from sitl.link import Link

RETRY_S = 0.4
MAX_RETRIES = 5
MISSION_ACCEPTED, MISSION_ERROR, MISSION_INVALID_SEQUENCE, MISSION_CANCELLED = 0, 1, 13, 15
ERROR = 3  # MAV_SEVERITY_ERROR


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
        self._retries = 0
        self._finished: dict[int, tuple[int, int]] = {}  # type -> (count, result) of the last upload

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
            "MISSION_ACK": lambda m: None,
        }.get(kind)
        if handler is None:
            return False
        handler(msg)
        return True

    def poll(self) -> None:
        if self._type is None or time.monotonic() - self._last_request_s < RETRY_S:
            return
        if self._retries >= MAX_RETRIES:
            self._ack(self._type, MISSION_CANCELLED)
            self._type = None
            return
        self._retries += 1
        self._request(len(self._items))

    # ------------------------------------------------------------ upload
    def _on_count(self, msg) -> None:
        self._partner = (msg.get_srcSystem(), msg.get_srcComponent())
        self._finished.pop(msg.mission_type, None)
        if msg.count == 0:
            self._type = None
            self._complete(msg.mission_type, [])
            return
        self._type, self._count, self._items, self._retries = msg.mission_type, msg.count, [], 0
        self._request(0)

    def _request(self, seq: int) -> None:
        self._last_request_s = time.monotonic()
        self._link.mav.mission_request_int_send(*self._partner, seq, self._type)

    def _on_item(self, msg, scaled: bool) -> None:
        if self._type is None or msg.mission_type != self._type:
            done = self._finished.get(msg.mission_type)
            if done and msg.seq == done[0] - 1:  # our ACK was lost and the last item came again
                self._ack(msg.mission_type, done[1])
            return
        expected = len(self._items)
        if msg.seq != expected:
            self._request(expected)
            return
        self._items.append(_raw(msg, scaled))
        self._retries = 0
        if len(self._items) < self._count:
            self._request(len(self._items))
            return
        mission_type, self._type = self._type, None
        self._complete(mission_type, self._items)

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
        items = self.stored(msg.mission_type)
        if not 0 <= msg.seq < len(items):
            self._ack(msg.mission_type, MISSION_INVALID_SEQUENCE)
            return
        i = items[msg.seq]
        current = 1 if msg.mission_type == 0 and msg.seq == self._ap.mission_seq else 0
        self._link.mav.mission_item_int_send(
            *self._partner, i.seq, i.frame, i.command, current, i.autocontinue,
            i.param1, i.param2, i.param3, i.param4, i.x, i.y, i.z, i.mission_type,
        )  # fmt: skip

    def _on_clear(self, msg) -> None:
        self._partner = (msg.get_srcSystem(), msg.get_srcComponent())
        self._ap.clear(msg.mission_type)
        self._ack(msg.mission_type, MISSION_ACCEPTED)

    def _on_set_current(self, msg) -> None:
        if 0 <= msg.seq < len(self._ap.mission):
            self._ap.mission_seq = msg.seq
            self._ap.mission_finished = False

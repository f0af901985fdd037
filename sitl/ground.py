"""A minimal MAVLink 2 ground station on pymavlink, for tests that speak the protocol by hand.

It listens where a vehicle sends (like MAVSDK's udpin) and answers to wherever the
vehicle's packets come from. Every wait takes a timeout in wall seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from pymavlink.dialects.v20 import common as mavlink2

GCS_SYSTEM_ID, GCS_COMPONENT_ID = 245, 190
BACKLOG = 500  # messages kept for a later recv(); telemetry would otherwise pile up


class _Writer:
    def __init__(self, ground: GroundLink) -> None:
        self._ground = ground

    def write(self, buf: bytes) -> None:
        if self._ground.peer is not None:
            self._ground.sock.sendto(bytes(buf), self._ground.peer)


class GroundLink:
    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.peer: tuple[str, int] | None = None
        self.mav = mavlink2.MAVLink(_Writer(self), srcSystem=GCS_SYSTEM_ID, srcComponent=GCS_COMPONENT_ID)
        self.mav.robust_parsing = True
        self._backlog: list = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> GroundLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, deadline: float) -> list:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []
        self.sock.settimeout(remaining)
        try:
            data, addr = self.sock.recvfrom(65535)
        except TimeoutError:
            return []
        self.peer = addr
        return [m for m in self.mav.parse_buffer(data) or () if m.get_type() != "BAD_DATA"]

    def recv(self, kind: str | tuple[str, ...], timeout_s: float = 2.0, where: Callable | None = None):
        """The next message of type `kind` (that satisfies `where`), or None after the timeout."""
        kinds = (kind,) if isinstance(kind, str) else kind
        deadline = time.monotonic() + timeout_s
        while True:
            for i, msg in enumerate(self._backlog):
                if msg.get_type() in kinds and (where is None or where(msg)):
                    del self._backlog[i]
                    return msg
            if time.monotonic() >= deadline:
                return None
            self._backlog.extend(self._read(deadline))
            del self._backlog[:-BACKLOG]

    def collect(self, seconds: float) -> list:
        """Every message that arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        out = list(self._backlog)
        self._backlog.clear()
        while time.monotonic() < deadline:
            out.extend(self._read(deadline))
        return out

    def wait_peer(self, timeout_s: float = 5.0) -> bool:
        return self.recv("HEARTBEAT", timeout_s) is not None

    def command(self, target: int, command: int, *params: float, timeout_s: float = 2.0):
        """COMMAND_LONG, then its COMMAND_ACK (or None)."""
        p = [*params, *([0.0] * (7 - len(params)))]
        self.mav.command_long_send(target, 1, command, 0, *p)
        return self.recv("COMMAND_ACK", timeout_s, where=lambda m: m.command == command)

    def upload(self, target: int, items: list[tuple], mission_type: int = 0, timeout_s: float = 5.0):
        """Upload items given as (frame, command, p1, p2, p3, p4, x, y, z); returns the MISSION_ACK."""
        self.mav.mission_count_send(target, 1, len(items), mission_type)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.recv(("MISSION_REQUEST_INT", "MISSION_REQUEST", "MISSION_ACK"), deadline - time.monotonic())
            if msg is None:
                return None
            if msg.get_type() == "MISSION_ACK":
                return msg
            frame, cmd, p1, p2, p3, p4, x, y, z = items[msg.seq]
            self.mav.mission_item_int_send(target, 1, msg.seq, frame, cmd, 0, 1, p1, p2, p3, p4, x, y, z, mission_type)
        return None

    def download(self, target: int, mission_type: int = 0, timeout_s: float = 5.0) -> list | None:
        self.mav.mission_request_list_send(target, 1, mission_type)
        count = self.recv("MISSION_COUNT", timeout_s)
        if count is None:
            return None
        items = []
        for seq in range(count.count):
            self.mav.mission_request_int_send(target, 1, seq, mission_type)
            item = self.recv("MISSION_ITEM_INT", timeout_s, where=lambda m, s=seq: m.seq == s)
            if item is None:
                return None
            items.append(item)
        self.mav.mission_ack_send(target, 1, 0, mission_type)
        return items

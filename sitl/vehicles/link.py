"""One vehicle's MAVLink 2 endpoint on UDP, with the faults tests inject: loss and outages.

The v2 dialect module is used directly on our own non-blocking socket rather than through
`mavutil`, whose MAVLink version is a process-wide environment switch (`MAVLINK20`).
Like PX4 it sends to the ground station's well-known port (udpin on the ground side) and
also answers whatever address the ground station sends from.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time

from pymavlink.dialects.v20 import common as mavlink2

MAX_DATAGRAMS_PER_POLL = 256  # bounds the time one poll spends on a flooding peer
MAX_PEERS = 4


class _Writer:
    """The file-like object pymavlink's `*_send` methods write packed messages to."""

    def __init__(self, link: Link) -> None:
        self._link = link

    def write(self, buf: bytes) -> None:
        self._link.send_bytes(bytes(buf))


class Link:
    def __init__(self, system_id: int, host: str, port: int, local_port: int = 0) -> None:
        """Send to `port`; receive on `local_port` (0: any free one), where onboard clients may send first."""
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.bind((host, local_port))
        except OSError:
            self.sock.close()
            raise
        self.local_port: int = self.sock.getsockname()[1]
        self.peers: list[tuple[str, int]] = [self.target]
        self.mav = mavlink2.MAVLink(_Writer(self), srcSystem=system_id, srcComponent=1)
        self.mav.robust_parsing = True
        self.system_id = system_id
        self.loss_fraction = 0.0
        self.outage_until_s = 0.0  # time.monotonic() deadline
        self._rng = random.Random(system_id)
        self.sent = self.dropped_out = self.received = self.dropped_in = 0

    def _lost(self) -> bool:
        if time.monotonic() < self.outage_until_s:
            return True
        loss = self.loss_fraction
        return loss > 0.0 and self._rng.random() < loss

    def send_bytes(self, buf: bytes) -> None:
        if self._lost():
            self.dropped_out += 1
            return
        self.sent += 1
        for peer in self.peers:
            # Nobody listening yet, or the socket is closing: UDP has no one to tell.
            with contextlib.suppress(OSError):
                self.sock.sendto(buf, peer)

    def receive(self) -> list[mavlink2.MAVLink_message]:
        """Messages that arrived since the last call and are meant for this vehicle."""
        messages = []
        for _ in range(MAX_DATAGRAMS_PER_POLL):
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if self._lost():
                self.dropped_in += 1
                continue
            self.received += 1
            if addr not in self.peers and len(self.peers) < MAX_PEERS:
                self.peers.append(addr)
            for msg in self.mav.parse_buffer(data) or ():
                if msg.get_type() == "BAD_DATA":
                    continue
                target = getattr(msg, "target_system", 0)
                if target in (0, self.system_id):
                    messages.append(msg)
        return messages

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

"""A UDP relay between a ground station and a vehicle that loses or holds packets: the same radio
fault for the built-in simulator and for real PX4, which has no fault hooks of its own on its link.

The vehicle sends to the relay's `vehicle_port` (where a ground station would listen: 14540+N
for PX4); the relay passes that on to the ground station's port and passes what the ground
station answers back to the vehicle's address. `loss_fraction` drops packets each way;
`outage(s)` drops everything for `s` seconds, or holds it and delivers it late with `hold=True`.
`send_to_vehicle(datagram)` speaks to the vehicle from the ground station's side, as a second
station on the same radio would.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

MAX_HELD = 10_000  # a held outage keeps at most this many packets, the newest


class UdpRelay:
    def __init__(
        self,
        vehicle_port: int,
        ground_port: int,
        host: str = "127.0.0.1",
        seed: int = 0,
        tap: Callable[[str, bytes], bool | None] | None = None,
    ) -> None:
        """`tap(direction, datagram)`, if given, sees every datagram that arrives, "down" from the
        vehicle or "up" from the ground station, before any is dropped (on the relay's thread);
        when it returns False the datagram goes no further. It may be set after the start."""
        self.ground = (host, ground_port)
        self.tap = tap
        self._from_vehicle = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._to_ground = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._from_vehicle.bind((host, vehicle_port))
            self._to_ground.bind((host, 0))
        except OSError:
            self.close()
            raise
        self.vehicle_port = self._from_vehicle.getsockname()[1]
        self._vehicle: tuple[str, int] | None = None
        self.loss_fraction = 0.0
        self._outage_until = 0.0
        self._hold = False
        self._held: deque[tuple[socket.socket, bytes, tuple[str, int]]] = deque(maxlen=MAX_HELD)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passed = self.dropped = 0

    @property
    def connect_url(self) -> str:
        """Where the ground station listens (MAVSDK's udpin)."""
        return f"udpin://{self.ground[0]}:{self.ground[1]}"

    def outage(self, seconds: float, hold: bool = False) -> None:
        """Nothing gets through for `seconds` of wall time from now; with `hold`, it arrives afterwards."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._hold = hold

    def send_to_vehicle(self, datagram: bytes) -> None:
        """To the vehicle, from the port the ground station's packets come from (nothing is lost);
        ValueError before the vehicle has sent anything, as there is nowhere to send yet."""
        if self._vehicle is None:
            raise ValueError(f"relay on port {self.vehicle_port}: the vehicle has not been heard yet")
        with contextlib.suppress(OSError):
            self._from_vehicle.sendto(datagram, self._vehicle)

    def start(self) -> UdpRelay:
        self._thread = threading.Thread(target=self._run, name=f"udp-relay-{self.vehicle_port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for sock in (self._from_vehicle, self._to_ground):
            sock.close()

    def __enter__(self) -> UdpRelay:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        sockets = [self._from_vehicle, self._to_ground]
        while not self._stop.is_set():
            ready, _, _ = select.select(sockets, [], [], 0.05)
            self._release_held()
            for sock in ready:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError:
                    continue
                from_vehicle = sock is self._from_vehicle
                if from_vehicle:
                    self._vehicle = addr
                tap = self.tap
                if tap is not None and tap("down" if from_vehicle else "up", data) is False:
                    continue
                if from_vehicle:
                    self._forward(self._to_ground, data, self.ground)
                elif self._vehicle is not None:
                    self._forward(self._from_vehicle, data, self._vehicle)

    def _forward(self, sock: socket.socket, data: bytes, to: tuple[str, int]) -> None:
        with self._lock:
            in_outage = time.monotonic() < self._outage_until
            if in_outage and self._hold:
                self._held.append((sock, data, to))
                return
            if in_outage or (self.loss_fraction > 0 and self._rng.random() < self.loss_fraction):
                self.dropped += 1
                return
        self.passed += 1
        with contextlib.suppress(OSError):  # nobody listening (yet): UDP has no one to tell
            sock.sendto(data, to)

    def _release_held(self) -> None:
        with self._lock:
            if not self._held or time.monotonic() < self._outage_until:
                return
            held, self._held = list(self._held), deque(maxlen=MAX_HELD)
        for sock, data, to in held:
            self.passed += 1
            with contextlib.suppress(OSError):
                sock.sendto(data, to)

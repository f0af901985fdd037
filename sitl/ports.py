"""Free UDP ports on the loopback: for tests (a block per fleet) and for the demo (its own ports
when the standard ones are taken)."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable

PORT_RANGE = (20000, 60000)


def udp_ports_busy(ports: Iterable[int], host: str = "0.0.0.0") -> list[int]:
    """Those of `ports` that something else already holds on `host` (empty when all are free)."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                busy.append(port)
    return busy


def free_port_block(count: int, host: str = "127.0.0.1", attempts: int = 100, *, also: int | None = None) -> int:
    """A base port such that base … base+count-1 are all free for UDP on `host` right now.

    With `also`, the block at base+also … base+also+count-1 must be free too (a simulated
    vehicle's onboard port sits at a fixed offset from its ground-station port).
    """
    rng = random.Random()
    span = count if also is None else also + count
    for _ in range(attempts):
        base = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - span)
        ports = list(range(base, base + count))
        if also is not None:
            ports += list(range(base + also, base + also + count))
        held = []
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no block of {count} free UDP ports on {host} after {attempts} attempts")

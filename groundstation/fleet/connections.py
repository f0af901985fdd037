"""Where vehicles are, and the MAVSDK instances that reach them.

A vehicle is addressed by a MAVSDK connection URL, with its MAVLink system id after
`?system=` when several vehicles share one connection (one UDP port that fifty simulated
drones send to, a radio modem serving a swarm): `udpin://0.0.0.0:14550?system=3`.

Each distinct connection gets one MAVSDK instance of its own, shared by the vehicles heard
on it, which MAVSDK tells apart by system id. Why not one instance per vehicle: MAVSDK takes
MAVLink channels from a fixed pool for every instance and connection ("Could not get a
MAVLink channel, using default 0" when it runs out, and connections then share a parser),
and measured here with MAVSDK 4.1, processes holding 20 or 30 instances ended with
`munmap_chunk(): invalid pointer` while 16 to 19 did not. And not one instance for every
connection: vehicles fresh from the factory, and PX4 SITL instances started alike, may all
call themselves system 1, and one instance would take two of them for one system.

A connection serves at most ten vehicles: MAVSDK calls every callback of an instance from
one thread and drops what queues up behind it ("Dropping subscription callbacks … a
subscriber is not keeping up"). Measured here, with the fleet link's subscriptions and with
bare MAVSDK alike: fifty vehicles or twenty-five on one connection lost callbacks, ten did
not (under a full CI run beside them, one callback in a few seconds). A large fleet is spread
over ports, ten vehicles each (`borderwatch sim --per-port 10`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from mavsdk.asyncio import ComponentType, Configuration, Mavsdk, MavsdkConnectionError

from groundstation.fleet.mavsdk_log import route_mavsdk_logs
from groundstation.fleet.state import FleetError, Reason

# Connections (so MAVSDK instances) one station holds, and vehicles one connection serves: within
# what ran cleanly here.
MAX_CONNECTIONS = 16
MAX_VEHICLES_PER_CONNECTION = 10


@dataclass(frozen=True)
class VehicleAddress:
    connection: str  # a MAVSDK connection URL
    system_id: int | None = None  # None: the first autopilot heard on the connection

    @classmethod
    def parse(cls, text: str) -> VehicleAddress:
        """`URL` or `URL?system=N` (N in 1–255); ValueError naming the text otherwise."""
        base, sep, query = text.strip().partition("?")
        if not sep:
            return cls(base)
        key, _, value = query.partition("=")
        if key != "system" or not value.isdigit() or not 1 <= int(value) <= 255:
            raise ValueError(f"{text}: after '?' give the vehicle's system id, as ?system=N with N from 1 to 255")
        return cls(base, int(value))

    def __str__(self) -> str:
        return self.connection if self.system_id is None else f"{self.connection}?system={self.system_id}"


def parse_addresses(urls: list[str] | tuple[str, ...]) -> list[VehicleAddress]:
    """The vehicles' addresses; ValueError when vehicles share a connection without saying which system
    each is, when two name the same system, or when there are more connections than MAVSDK can hold."""
    addresses = [VehicleAddress.parse(u) for u in urls]
    by_connection: dict[str, list[int]] = {}
    for i, a in enumerate(addresses):
        by_connection.setdefault(a.connection, []).append(i)
    for connection, indices in by_connection.items():
        if len(indices) > MAX_VEHICLES_PER_CONNECTION:
            raise ValueError(
                f"{len(indices)} vehicles on {connection}: one connection serves at most "
                f"{MAX_VEHICLES_PER_CONNECTION} (MAVSDK drops telemetry beyond); spread them over several ports"
            )
        if len(indices) < 2:
            continue
        names = ", ".join(str(i + 1) for i in indices)
        ids = [addresses[i].system_id for i in indices]
        if None in ids:
            raise ValueError(f"vehicles {names} share {connection}: say which system each is, as {connection}?system=N")
        if len(set(ids)) < len(ids):
            raise ValueError(f"vehicles {names} on {connection} name the same system id twice")
    if len(by_connection) > MAX_CONNECTIONS:
        raise ValueError(
            f"{len(by_connection)} connections: MAVSDK holds at most {MAX_CONNECTIONS} in one station; "
            "let vehicles share one (a single UDP port, each vehicle ?system=N)"
        )
    return addresses


class MavsdkConnection:
    """One MAVSDK instance on one connection URL; `system()` finds a vehicle on it."""

    def __init__(self, url: str) -> None:
        route_mavsdk_logs()
        self.url = url
        self.mavsdk = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
        self._opened: asyncio.Task | None = None

    async def open(self, index: int) -> None:
        """Adds the connection once, whichever vehicle asks first; FleetError naming `index` if it cannot."""
        if self._opened is None:
            self._opened = asyncio.ensure_future(self.mavsdk.add_any_connection(self.url))
        try:
            await asyncio.shield(self._opened)
        except MavsdkConnectionError as exc:
            raise FleetError(index, Reason.CONNECTION_FAILED, f"cannot open {self.url}: {exc}") from None

    async def system(self, index: int, system_id: int | None, timeout_s: float) -> Any:
        """The autopilot with `system_id` (any, for None) heard on this connection within `timeout_s`."""
        if system_id is None:
            system = await self.mavsdk.first_autopilot(timeout_s=timeout_s)
            if system is None:
                raise FleetError(index, Reason.TIMEOUT, f"no autopilot heard on {self.url} within {timeout_s:g} s")
            return system
        deadline = time.monotonic() + timeout_s
        while True:
            for system in await self.mavsdk.get_systems():
                if await system.get_system_id() == system_id and await system.has_autopilot():
                    return system
            if time.monotonic() >= deadline:
                raise FleetError(
                    index, Reason.TIMEOUT, f"no autopilot with system id {system_id} heard on {self.url} within "
                    f"{timeout_s:g} s",
                )  # fmt: skip
            await asyncio.sleep(0.2)

    def destroy(self) -> None:
        self.mavsdk.destroy()

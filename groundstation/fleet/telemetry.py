"""One vehicle's telemetry: one subscription per MAVSDK stream, one snapshot feed out.

Each stream is read by its own task, which only records the newest value; a publisher
task turns those into a frozen :class:`VehicleState` at `rate_hz` and also watches the link:
when no message of any stream has arrived for `stale_after_s`, the link is declared lost
(MAVSDK's own connection state takes longer to flip), and when messages come back it is
declared restored. Nothing here ever sends to the vehicle, so a restored link leaves the
mission exactly where the vehicle took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from groundstation.fleet.feed import Feed
from groundstation.fleet.reasons import classify_status_text, severity_of
from groundstation.fleet.state import (
    FleetEvent,
    FlightMode,
    LandedState,
    MissionState,
    Reason,
    Severity,
    VehicleState,
    vehicle_name,
)

_LANDED = {
    "ON_GROUND": LandedState.ON_GROUND,
    "IN_AIR": LandedState.IN_AIR,
    "TAKING_OFF": LandedState.TAKING_OFF,
    "LANDING": LandedState.LANDING,
}


class VehicleTelemetry:
    def __init__(
        self,
        index: int,
        system_id: int,
        telemetry: Any,  # mavsdk.asyncio.plugins.telemetry.TelemetryAsync
        mission_raw: Any,  # mavsdk.asyncio.plugins.mission_raw.MissionRawAsync
        direct: Any,  # mavsdk.asyncio.plugins.mavlink_direct.MavlinkDirectAsync
        events: Feed[FleetEvent],
        *,
        rate_hz: float = 10.0,
        stale_after_s: float = 2.0,
        on_state: Callable[[VehicleState], None] | None = None,
    ) -> None:
        self.index = index
        self.name = vehicle_name(index)
        self.states: Feed[VehicleState] = Feed(keep=1)
        self.events = events
        self._telemetry = telemetry
        self._mission_raw = mission_raw
        self._direct = direct
        self.mission_state_at = -math.inf  # time.monotonic() of the last MISSION_CURRENT
        self._period_s = 1.0 / rate_hz
        self._stale_after_s = stale_after_s
        self._on_state = on_state
        self._fields: dict[str, Any] = {}
        self._state = VehicleState(vehicle=index, system_id=system_id)
        self._last_rx = time.monotonic()
        self._link_ok = True
        self._reached = -1
        self._total_override = -1
        self._healthy = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def state(self) -> VehicleState:
        return self._state

    @property
    def link_ok(self) -> bool:
        return self._link_ok

    def start(self) -> None:
        t, m = self._telemetry, self._mission_raw
        pumps: list[tuple[str, Callable[[], AsyncIterator[Any]], Callable[[Any], None]]] = [
            ("position", t.subscribe_position, self._on_position),
            ("heading", t.subscribe_heading, lambda h: self._set(heading_deg=h.heading_deg)),
            ("velocity", t.subscribe_velocity_ned, self._on_velocity),
            ("battery", t.subscribe_battery, self._on_battery),
            ("flight mode", t.subscribe_flight_mode, lambda f: self._set(flight_mode=FlightMode.named(f.name))),
            ("armed", t.subscribe_armed, lambda a: self._set(armed=bool(a))),
            ("landed state", t.subscribe_landed_state, self._on_landed),
            ("health", t.subscribe_health, self._on_health),
            ("status text", t.subscribe_status_text, self._on_status_text),
            ("mission progress", m.subscribe_mission_progress, self._on_progress),
            # MAVSDK's mission progress leaves out mission_state, which says whether the vehicle took the mission.
            ("mission state", lambda: self._direct.subscribe_message("MISSION_CURRENT"), self._on_mission_current),
        ]
        for what, subscribe, handle in pumps:
            self._tasks.append(asyncio.create_task(self._pump(subscribe, handle), name=f"{self.name} {what}"))
        self._tasks.append(asyncio.create_task(self._publish_loop(), name=f"{self.name} publisher"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.states.close()

    async def wait_healthy(self) -> None:
        await self._healthy.wait()

    def expect_mission(self, total: int) -> None:
        """A new mission of `total` items is on the vehicle: progress starts again from 0."""
        self._total_override = total
        self._reached = 0
        self._fields.update(mission_current=0, mission_total=total, mission_reached=0)

    def emit(self, reason: Reason, message: str, severity: Severity = Severity.INFO) -> FleetEvent:
        event = FleetEvent(self.index, reason, f"{self.name}: {message}", time.monotonic(), severity)
        self.events.publish(event)
        return event

    async def _pump(self, subscribe: Callable[[], AsyncIterator[Any]], handle: Callable[[Any], None]) -> None:
        async for value in subscribe():
            self._last_rx = time.monotonic()
            handle(value)

    async def _publish_loop(self) -> None:
        while True:
            self._watch_link(time.monotonic())
            self._publish()
            await asyncio.sleep(self._period_s)

    def _watch_link(self, now: float) -> None:
        silent_s = now - self._last_rx
        if self._link_ok and silent_s > self._stale_after_s:
            self._link_ok = False
            self.emit(Reason.LINK_LOST, f"link lost: nothing heard for {silent_s:.1f} s", Severity.ERROR)
        elif not self._link_ok and silent_s <= self._stale_after_s:
            self._link_ok = True
            self.emit(Reason.LINK_RESTORED, "link restored", Severity.WARNING)

    def _publish(self) -> None:
        state = dataclasses.replace(self._state, **self._fields, link_ok=self._link_ok, monotonic_s=self._last_rx)
        self._state = state
        self.states.publish(state)
        if self._on_state is not None:
            self._on_state(state)

    def _set(self, **fields: Any) -> None:
        self._fields.update(fields)

    def _on_position(self, p: Any) -> None:
        self._set(lat_deg=p.latitude_deg, lon_deg=p.longitude_deg)
        self._set(abs_alt_m=p.absolute_altitude_m, rel_alt_m=p.relative_altitude_m)

    def _on_velocity(self, v: Any) -> None:
        self._set(ground_speed_m_s=math.hypot(v.north_m_s, v.east_m_s))

    def _on_battery(self, b: Any) -> None:
        self._set(battery_pct=float(b.remaining_percent))

    def _on_landed(self, landed: Any) -> None:
        new = _LANDED.get(landed.name, LandedState.UNKNOWN)
        old = self._fields.get("landed_state", LandedState.UNKNOWN)
        self._set(landed_state=new)
        if new is LandedState.ON_GROUND and old in (LandedState.IN_AIR, LandedState.LANDING):
            self.emit(Reason.LANDED, "landed")

    def _on_health(self, h: Any) -> None:
        if h.is_global_position_ok and h.is_home_position_ok:
            self._healthy.set()
        else:
            self._healthy.clear()

    def _on_status_text(self, s: Any) -> None:
        text = str(s.text).strip()
        if text:
            self.emit(classify_status_text(text), f"says {text!r}", severity_of(int(s.type)))

    def _on_progress(self, p: Any) -> None:
        total = self._total_override if self._total_override > 0 else int(p.total)
        current = int(p.current)
        if current < 0:
            return  # MAVSDK forgets the progress while the link is down; keep what we knew
        self._set(mission_current=current, mission_total=total)
        if self._reached >= 0 and current > self._reached:
            self._reached = current
            self._set(mission_reached=current)
            if total > 0 and current >= total:
                self.emit(Reason.MISSION_COMPLETE, f"mission complete: all {total} items reached")
            else:
                self.emit(Reason.MISSION_PROGRESS, f"item {current}/{total}", Severity.DEBUG)

    def _on_mission_current(self, message: Any) -> None:
        try:
            state = int(json.loads(message.fields_json).get("mission_state", 0))
        except (ValueError, TypeError, AttributeError):
            return  # a message MAVSDK could not decode says nothing about the mission
        self._set(
            mission_state=MissionState(state) if state in MissionState._value2member_map_ else MissionState.UNKNOWN
        )
        self.mission_state_at = time.monotonic()

    @property
    def items_reached(self) -> int:
        """The most items done at once since the mission was uploaded (jumps go back; this does not)."""
        return max(self._reached, 0)

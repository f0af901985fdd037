"""One mission flown start to finish: health, upload and verify, arm, start, watch until landed.

The outcome says what happened in terms a report can print; nothing here prints.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from groundstation.fleet.link import VehicleLink
from groundstation.fleet.mission import RawPlan
from groundstation.fleet.state import FleetError, FlightMode, LandedState, Reason, VehicleState
from missions.plan import Command

_RETURNING_MODES = frozenset({FlightMode.RETURN_TO_LAUNCH, FlightMode.LAND})
_ENDS_ON_GROUND = frozenset({Command.NAV_RETURN_TO_LAUNCH, Command.NAV_LAND, Command.NAV_VTOL_LAND})


@dataclass(frozen=True)
class FlightOptions:
    health_timeout_s: float = 30.0
    upload_timeout_s: float = 60.0
    start_retry_s: float = 15.0
    return_after_s: float = 3.0  # a vehicle still hovering this long after its last item is sent home


@dataclass(frozen=True)
class FlightOutcome:
    vehicle: int
    items_total: int
    items_reached: int = 0
    mission_complete: bool = False
    landed: bool = False  # on the ground and disarmed at the end
    flight_time_s: float = 0.0
    battery_start_pct: float = math.nan
    battery_end_pct: float = math.nan
    error: FleetError | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.mission_complete and self.landed and self.error is None

    @property
    def battery_used_pct(self) -> float:
        return self.battery_start_pct - self.battery_end_pct


class Flight:
    """Flies `raw` on `vehicle`; `outcome()` may be asked at any time, also after a cancel or timeout."""

    def __init__(self, vehicle: VehicleLink, raw: RawPlan, options: FlightOptions | None = None) -> None:
        self.vehicle = vehicle
        self.raw = raw
        self.options = options or FlightOptions()
        self._error: FleetError | None = None
        self._notes: list[str] = []
        self._armed_at: float | None = None
        self._disarmed_at: float | None = None
        self._battery_start = math.nan
        self._battery_armed = math.nan  # the last level read while armed: PX4 SITL reads full once disarmed
        self._was_armed = False
        self._last: VehicleState = vehicle.state

    async def run(self) -> FlightOutcome:
        o, v = self.options, self.vehicle
        try:
            await v.wait_healthy(o.health_timeout_s)
            await v.upload(self.raw, timeout_s=o.upload_timeout_s)
            # Battery comes at 1 Hz: the first reading may not be in when the upload ends.
            try:
                ready = await v.wait_for(lambda s: not math.isnan(s.battery_pct), 5.0, "a battery reading")
                self._battery_start = ready.battery_pct
            except FleetError:
                self._notes.append("the vehicle reported no battery level before take-off")
            self._armed_at = await v.launch(retry_for_s=o.start_retry_s)
            await self._watch()
        except FleetError as exc:
            self._error = exc
        return self.outcome()

    async def _watch(self) -> None:
        """Until the vehicle is down and disarmed; a vehicle left hovering after its last item is sent home."""
        finished_at: float | None = None
        returned = False
        with self.vehicle.states.subscribe(replay_latest=True) as states:
            async for state in states:
                self._track(state)
                if self._was_armed and state.on_ground_disarmed:
                    return
                if state.mission_finished and not returned:
                    finished_at = finished_at or time.monotonic()
                    hovering = state.landed_state is LandedState.IN_AIR and state.flight_mode not in _RETURNING_MODES
                    if hovering and time.monotonic() - finished_at > self.options.return_after_s:
                        returned = True
                        self._notes.append("sent home after its last item")
                        await self.vehicle.return_to_launch()
        raise FleetError(self.vehicle.index, Reason.LINK_LOST, "the link was closed during the flight")

    def _track(self, state: VehicleState) -> None:
        self._last = state
        if state.armed and not math.isnan(state.battery_pct):
            self._battery_armed = state.battery_pct
        if state.armed and not self._was_armed:
            self._was_armed = True
            self._armed_at = self._armed_at or time.monotonic()
        if self._was_armed and not state.armed and self._disarmed_at is None:
            self._disarmed_at = time.monotonic()

    def outcome(self) -> FlightOutcome:
        state = self.vehicle.state
        self._track(state)
        total = len(self.raw.mission)
        reached = state.mission_reached
        # PX4 hands a final RETURN_TO_LAUNCH or LAND over to its own mode and may never report it reached.
        ends_on_ground = self.raw.mission and self.raw.mission[-1].command in _ENDS_ON_GROUND
        landed = self._was_armed and state.on_ground_disarmed
        complete = reached >= total or (ends_on_ground and landed and reached >= total - 1)
        end = self._disarmed_at or time.monotonic()
        return FlightOutcome(
            vehicle=self.vehicle.index,
            items_total=total,
            items_reached=total if complete else min(reached, total),
            mission_complete=bool(complete),
            landed=bool(landed),
            flight_time_s=end - self._armed_at if self._armed_at is not None else 0.0,
            battery_start_pct=self._battery_start,
            battery_end_pct=state.battery_pct if math.isnan(self._battery_armed) else self._battery_armed,
            error=self._error,
            notes=tuple(self._notes),
        )


async def fly_all(flights: list[Flight], timeout_s: float) -> list[FlightOutcome]:
    """Every flight at once, bounded by `timeout_s`; a flight still going then is reported as timed out."""
    tasks = [asyncio.create_task(f.run(), name=f"{f.vehicle.name} flight") for f in flights]
    try:
        await asyncio.wait(tasks, timeout=timeout_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    outcomes = []
    for flight, task in zip(flights, tasks, strict=True):
        if task.cancelled():
            if flight._error is None:
                flight._error = FleetError(flight.vehicle.index, Reason.TIMEOUT, f"not landed within {timeout_s:g} s")
        elif task.exception() is not None:
            flight._error = FleetError(flight.vehicle.index, Reason.FAILSAFE, f"flight failed: {task.exception()!r}")
        outcomes.append(flight.outcome())
    return outcomes

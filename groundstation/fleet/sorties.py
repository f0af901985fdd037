"""A vehicle's sorties flown one after another: each a :class:`Flight`, the next one uploaded only
once the last has landed and disarmed. A sortie that does not end well stops the chain.

Progress goes out as :class:`FleetEvent` on the vehicle's event feed, so every consumer of the
fleet's events (the GUI's log, a run recorder, the CLI) sees it without being told about sorties.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from groundstation.fleet.flight import Flight, FlightOptions, FlightOutcome
from groundstation.fleet.link import VehicleLink
from groundstation.fleet.mission import RawPlan
from groundstation.fleet.state import FleetEvent, Reason, Severity


@dataclass(frozen=True)
class SortiesOutcome:
    vehicle: int
    planned: int
    flights: tuple[FlightOutcome, ...] = ()

    @property
    def ok(self) -> bool:
        return len(self.flights) == self.planned and all(f.ok for f in self.flights)


async def fly_sorties(
    vehicle: VehicleLink,
    raws: Sequence[RawPlan],
    options: FlightOptions | None = None,
    *,
    on_sortie: Callable[[int, int], None] | None = None,
) -> SortiesOutcome:
    """Flies `raws` in order on `vehicle`; `on_sortie(number, count)` (number from 1) as each begins."""
    count = len(raws)
    flown: list[FlightOutcome] = []
    for number, raw in enumerate(raws, start=1):
        tag = f"sortie {number}/{count}"
        if on_sortie is not None:
            on_sortie(number, count)
        _say(vehicle, Reason.MISSION_PROGRESS, f"{tag}: starting ({len(raw.mission)} items)")
        outcome = await Flight(vehicle, raw, options).run()
        flown.append(outcome)
        if not outcome.ok:
            reason = outcome.error.reason if outcome.error is not None else Reason.MISSION_REJECTED
            why = outcome.error.detail if outcome.error is not None else _shortfall(outcome)
            rest = "; the remaining sorties are not flown" if number < count else ""
            _say(vehicle, reason, f"{tag} failed: {why}{rest}", Severity.ERROR)
            break
        _say(vehicle, Reason.MISSION_COMPLETE, f"{tag}: done, landed after {outcome.flight_time_s:.0f} s in the air")
    return SortiesOutcome(vehicle.index, count, tuple(flown))


def _shortfall(outcome: FlightOutcome) -> str:
    where = "landed" if outcome.landed else "not landed"
    return f"{outcome.items_reached}/{outcome.items_total} items reached, {where}"


def _say(vehicle: VehicleLink, reason: Reason, message: str, severity: Severity = Severity.INFO) -> None:
    vehicle.events.publish(FleetEvent(vehicle.index, reason, f"{vehicle.name}: {message}", time.monotonic(), severity))

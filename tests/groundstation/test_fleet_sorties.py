"""Sorties flown one after another on a simulated vehicle; one that fails stops the chain."""

from __future__ import annotations

import asyncio

import pytest

from groundstation.fleet import FleetLink, Reason, Severity, raw_plan
from groundstation.fleet.flight import FlightOptions
from groundstation.fleet.sorties import fly_sorties
from missions.plan import FencePolygon, MissionItem, MissionPlan, Waypoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

D = 0.0009  # ~100 m of latitude


def square(home: tuple[float, float], east_deg: float) -> MissionPlan:
    lat, lon = home
    r = 5 * D
    box = ((lat - r, lon - r), (lat + r, lon - r), (lat + r, lon + r), (lat - r, lon + r))
    items = (
        MissionItem.takeoff(lat, lon, 20.0),
        MissionItem.change_speed(10.0),
        MissionItem.waypoint(lat + D, lon, 20.0),
        MissionItem.waypoint(lat + D, lon + east_deg, 20.0),
        MissionItem.return_to_launch(),
    )
    return MissionPlan(items=items, home=Waypoint(lat, lon, 10.0), fence_polygons=(FencePolygon(box, inclusion=True),))


def test_sorties_fly_in_turn_and_one_refused_stops_the_rest(sim_vehicle):
    home = sim_vehicle.home
    raws = [raw_plan(square(home, D)), raw_plan(square(home, 0.02)), raw_plan(square(home, -D))]  # 2nd: outside

    async def scenario():
        async with FleetLink.connect([sim_vehicle.connect_url], timeout_s=10) as fleet:
            events = fleet.events.subscribe(keep=1000)
            begun: list[tuple[int, int]] = []
            options = FlightOptions(start_retry_s=3.0)
            outcome = await fly_sorties(fleet[0], raws, options, on_sortie=lambda n, c: begun.append((n, c)))
            return outcome, begun, [e for e in iter(events.get_nowait, None)]

    outcome, begun, events = asyncio.run(asyncio.wait_for(scenario(), 100))
    assert begun == [(1, 3), (2, 3)]
    assert not outcome.ok and outcome.planned == 3 and len(outcome.flights) == 2
    assert outcome.flights[0].ok
    assert outcome.flights[1].error is not None and outcome.flights[1].error.reason is Reason.FENCE_VIOLATION
    said = [e.message for e in events]
    assert "vehicle 1: sortie 1/3: starting (5 items)" in said
    assert any(m.startswith("vehicle 1: sortie 1/3: done") for m in said)
    failed = [e for e in events if e.message.startswith("vehicle 1: sortie 2/3 failed")]
    assert len(failed) == 1 and failed[0].severity is Severity.ERROR and failed[0].reason is Reason.FENCE_VIOLATION
    assert "remaining sorties are not flown" in failed[0].message
    assert not any("sortie 3/3" in m for m in said)
    assert not sim_vehicle.state().armed

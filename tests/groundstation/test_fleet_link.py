"""The fleet link against simulated PX4 vehicles on 127.0.0.1 (sitl.pytest_plugin fixtures)."""

from __future__ import annotations

import asyncio
import time

import pytest

from groundstation.fleet import FleetError, FleetLink, Reason, raw_plan
from groundstation.fleet.flight import Flight, FlightOptions, fly_all
from groundstation.fleet.mission import RawItem, differences
from missions.plan import FenceCircle, FencePolygon, MissionItem, MissionPlan, Waypoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

D = 0.0009  # ~100 m of latitude


def small_plan(home: tuple[float, float], *, fence: bool = True, outside: bool = False, laps: int = 0) -> MissionPlan:
    lat, lon = home
    far = 0.02 if outside else D
    items = [
        MissionItem.takeoff(lat, lon, 20.0),
        MissionItem.change_speed(10.0),
        MissionItem.waypoint(lat + D, lon, 20.0),
        MissionItem.waypoint(lat + D, lon + far, 20.0),
    ]
    if laps:
        items.append(MissionItem.jump(3, laps))
    items.append(MissionItem.return_to_launch())
    r = 5 * D
    box = ((lat - r, lon - r), (lat + r, lon - r), (lat + r, lon + r), (lat - r, lon + r))
    return MissionPlan(
        items=tuple(items),
        home=Waypoint(lat, lon, 10.0),
        fence_polygons=(FencePolygon(box, inclusion=True),) if fence else (),
        fence_circles=(FenceCircle(lat - 2 * D, lon - 2 * D, 30.0, inclusion=False),) if fence else (),
        rally=(Waypoint(lat + D / 2, lon, 25.0),),
    )


def run(coro, timeout_s: float = 90.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def test_upload_of_mission_fence_and_rally_downloads_back_the_same(sim_vehicle):
    plan = small_plan(sim_vehicle.home, laps=2)

    async def scenario():
        async with FleetLink.connect([sim_vehicle.connect_url], timeout_s=10) as fleet:
            v = fleet[0]
            await v.wait_healthy(10)
            sent = await v.upload(plan)  # verify=True downloads all three and compares
            await v.verify(sent)
            return sent

    sent = run(scenario())
    assert len(sent.fence) == 5 and len(sent.rally) == 1
    for mission_type, items in ((0, sent.mission), (1, sent.fence), (2, sent.rally)):
        fields = RawItem.__dataclass_fields__
        held = [RawItem(**{f: getattr(i, f) for f in fields}) for i in sim_vehicle.uploaded(mission_type)]
        assert differences(items, held) == []
    jump = sim_vehicle.uploaded(0)[4]
    assert (jump.command, jump.param1) == (177, 2.0)


def fly_small_plan(vehicle) -> tuple:
    plan = small_plan(vehicle.home)

    async def scenario():
        async with FleetLink.connect([vehicle.connect_url], timeout_s=30) as fleet:
            seen = fleet.states.subscribe(keep=10_000)
            outcome = (await fly_all([Flight(fleet[0], raw_plan(plan))], timeout_s=110))[0]
            states = [s[0] for s in iter(seen.get_nowait, None)]
            return outcome, states

    outcome, states = run(scenario(), timeout_s=115)
    assert outcome.ok, outcome
    assert outcome.items_reached == outcome.items_total == len(plan.items)
    assert outcome.flight_time_s > 0 and outcome.battery_used_pct > 0
    assert max(s.rel_alt_m for s in states) > 15
    # Cruising at altitude reads as in the air, as PX4 reports it through MAVSDK.
    assert any(s.landed_state.value == "in_air" and s.rel_alt_m > 15 for s in states)
    assert not any(s.landed_state.value == "taking_off" and s.ground_speed_m_s > 5 for s in states)
    assert states[-1].on_ground_disarmed


def test_a_small_plan_is_flown_every_item_reached_then_home_and_landed(sim_vehicle):
    fly_small_plan(sim_vehicle)
    assert sim_vehicle.state().armed is False


@pytest.mark.px4
def test_real_px4_flies_the_same_small_plan(px4_vehicle):
    fly_small_plan(px4_vehicle)


def test_snapshots_come_at_five_hertz_or_more(sim_vehicle):
    async def scenario():
        async with FleetLink.connect([sim_vehicle.connect_url], timeout_s=10) as fleet:
            with fleet[0].states.subscribe(keep=1000) as sub:
                await asyncio.sleep(2.0)
                return [s for s in iter(sub.get_nowait, None)]

    states = run(scenario())
    assert len(states) >= 10
    assert all(s.link_ok for s in states[-5:])
    assert states[-1].battery_pct > 90 and states[-1].landed_state.value == "on_ground"


def refuse_outside_fence(vehicle) -> None:
    plan = small_plan(vehicle.home, outside=True)

    async def scenario():
        async with FleetLink.connect([vehicle.connect_url], timeout_s=30) as fleet:
            flight = Flight(fleet[0], raw_plan(plan), FlightOptions(start_retry_s=3.0))
            return (await fly_all([flight], timeout_s=40))[0]

    outcome = run(scenario())
    assert not outcome.ok
    assert outcome.error is not None and outcome.error.reason is Reason.FENCE_VIOLATION, outcome.error
    assert "vehicle 1" in str(outcome.error) and "waypoint 4" in str(outcome.error)
    assert outcome.flight_time_s == 0  # refused on the ground: never armed


def test_a_waypoint_outside_the_fence_is_refused_with_that_reason(sim_vehicle):
    refuse_outside_fence(sim_vehicle)
    assert sim_vehicle.state().armed is False


@pytest.mark.px4
def test_real_px4_refuses_the_same_waypoint_outside_the_fence(px4_vehicle):
    refuse_outside_fence(px4_vehicle)


def test_three_vehicles_fly_at_once(sim_fleet):
    sim = sim_fleet(3, speed_factor=15)

    async def scenario():
        async with FleetLink.connect([v.connect_url for v in sim.vehicles], timeout_s=10) as fleet:
            flights = [Flight(v, raw_plan(small_plan(s.home))) for v, s in zip(fleet, sim.vehicles, strict=True)]
            return await fly_all(flights, timeout_s=80)

    started = time.monotonic()
    outcomes = run(scenario())
    assert [o.ok for o in outcomes] == [True, True, True], outcomes
    assert time.monotonic() - started < 60


def test_upload_succeeds_through_twenty_percent_packet_loss(sim_vehicle):
    sim_vehicle.set_packet_loss(20)
    plan = small_plan(sim_vehicle.home, laps=1)

    async def scenario():
        async with FleetLink.connect([sim_vehicle.connect_url], timeout_s=15) as fleet:
            await fleet[0].wait_healthy(15)
            return await fleet[0].upload(plan, timeout_s=60)

    sent = run(scenario())
    assert len(sim_vehicle.uploaded(0)) == len(sent.mission)


def test_a_link_outage_mid_mission_is_reported_within_3_s_and_the_mission_carries_on(sim_vehicle):
    plan = small_plan(sim_vehicle.home, laps=3)

    async def scenario():
        async with FleetLink.connect([sim_vehicle.connect_url], timeout_s=10) as fleet:
            events = fleet.events.subscribe(keep=1000)
            flight = Flight(fleet[0], raw_plan(plan))
            task = asyncio.create_task(fly_all([flight], timeout_s=100))
            await fleet[0].wait_for(lambda s: s.mission_reached >= 2, 30, "the first waypoint")
            cut = time.monotonic()
            sim_vehicle.link_outage(5.0)
            lost = await fleet[0].wait_for(lambda s: not s.link_ok, 5, "link loss")
            back = await fleet[0].wait_for(lambda s: s.link_ok, 10, "link back")
            outcome = (await task)[0]
            return outcome, cut, lost, back, list(iter(events.get_nowait, None))

    outcome, cut, lost, _back, events = run(scenario(), 120)
    assert lost.time_s <= cut + 0.5  # the snapshot still says when we last heard from it
    reasons = [e.reason for e in events]
    assert Reason.LINK_LOST in reasons and Reason.LINK_RESTORED in reasons
    lost_at = next(e.time_s for e in events if e.reason is Reason.LINK_LOST)
    assert lost_at - cut < 3.0
    assert reasons.count(Reason.MISSION_STARTED) == 1  # not restarted after the outage
    assert outcome.ok, outcome


def test_a_battery_failure_sends_the_vehicle_home_and_says_why(sim_vehicle):
    plan = small_plan(sim_vehicle.home, laps=20)

    async def scenario():
        async with FleetLink.connect([sim_vehicle.connect_url], timeout_s=10) as fleet:
            events = fleet.events.subscribe(keep=1000)
            task = asyncio.create_task(fly_all([Flight(fleet[0], raw_plan(plan))], timeout_s=100))
            await fleet[0].wait_for(lambda s: s.mission_reached >= 3, 30, "the second waypoint")
            sim_vehicle.battery_failure()
            returning = await fleet[0].wait_for(lambda s: s.flight_mode in ("return_to_launch", "land"), 10, "return")
            outcome = (await task)[0]
            return outcome, returning, list(iter(events.get_nowait, None))

    outcome, returning, events = run(scenario(), 120)
    assert returning.flight_mode in ("return_to_launch", "land")
    battery = [e for e in events if e.reason is Reason.BATTERY_LOW]
    assert battery and "vehicle 1" in battery[0].message
    assert outcome.landed and not outcome.mission_complete and not outcome.ok


def test_no_vehicle_on_the_port_is_a_timeout_naming_the_vehicle():
    async def scenario():
        async with FleetLink.connect(["udpin://127.0.0.1:9"], timeout_s=1.0):
            pass

    with pytest.raises(FleetError) as info:
        run(scenario(), 20)
    assert info.value.reason in (Reason.TIMEOUT, Reason.CONNECTION_FAILED)
    assert str(info.value).startswith("vehicle 1: ")


def test_pause_holds_resume_continues_and_land_brings_it_down(sim_vehicle):
    lat, lon = sim_vehicle.home
    plan = small_plan(sim_vehicle.home)
    far = MissionItem.waypoint(lat + 4 * D, lon + 4 * D, 20.0)
    plan = MissionPlan((*plan.items[:3], far, *plan.items[3:]), plan.home, plan.fence_polygons, (), plan.rally)

    async def scenario():
        async with FleetLink.connect([sim_vehicle.connect_url], timeout_s=10) as fleet:
            v = fleet[0]
            await v.wait_healthy(10)
            await v.upload(plan)
            await v.arm()
            await v.start_mission(retry_for_s=10)
            await v.wait_for(lambda s: s.mission_reached >= 3 and s.rel_alt_m > 15, 40, "the first waypoint")
            await v.pause()
            held = await v.wait_for(lambda s: s.ground_speed_m_s < 0.5, 20, "hold")
            await asyncio.sleep(1.0)
            still = v.state
            await v.resume()
            moving = await v.wait_for(lambda s: s.ground_speed_m_s > 3, 20, "moving again")
            await v.land()
            down = await v.wait_for(lambda s: s.landed_state.value == "on_ground", 60, "landed")
            return held, still, moving, down

    held, still, moving, down = run(scenario())
    assert held.flight_mode == "hold" and still.flight_mode == "hold"
    # Holding: a second later it is still within a few metres of where it stopped.
    assert abs(still.lat_deg - held.lat_deg) < 3e-5 and abs(still.lon_deg - held.lon_deg) < 3e-5
    assert moving.flight_mode == "mission"
    assert down.mission_reached < len(plan.items)  # landed where it was told to, before the mission's end
    assert sim_vehicle.state().mission_finished is False


def test_a_mission_starts_even_when_the_vehicle_would_disarm_before_its_check_ends(sim_fleet):
    # At 40x, PX4's 10 s pre-flight auto-disarm is a quarter of a wall second, shorter than the
    # mission check that follows an upload: arming before the check is over loses the vehicle.
    vehicle = sim_fleet(1, speed_factor=40).vehicles[0]
    plan = small_plan(vehicle.home)

    async def scenario():
        async with FleetLink.connect([vehicle.connect_url], timeout_s=10) as fleet:
            return (await fly_all([Flight(fleet[0], raw_plan(plan))], timeout_s=60))[0]

    outcome = run(scenario())
    assert outcome.ok, outcome
    assert outcome.items_reached == len(plan.items)

"""The fleet link flying real PX4 SITL (SIH) and the built-in simulator: every scenario runs on both,
`[px4]` and `[sim]`, with the same test body. Faults reach both the same way: packets through
a UdpRelay, battery and GPS failures through the vehicle's own failure injection."""

from __future__ import annotations

import asyncio
import time

import pytest
from pymavlink.dialects.v20 import common as mavlink

from groundstation.fleet import FleetError, FleetLink, LandedState, Reason, raw_plan
from groundstation.fleet.flight import Flight, FlightOptions, fly_all
from missions.plan import FenceCircle, FencePolygon, MissionItem, MissionPlan, Waypoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

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
        rally=(Waypoint(lat - D / 4, lon, 5.0),),
    )


def run(coro, timeout_s: float = 200.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def test_upload_of_mission_fence_and_rally_downloads_back_the_same(drones):
    fleet_under_test = drones(1)
    plan = small_plan(fleet_under_test.homes[0], laps=2)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            v = fleet[0]
            await v.wait_healthy(30)
            sent = await v.upload(plan)  # verify=True downloads all three and compares
            await v.verify(sent)  # and again: what the vehicle holds stays the same
            return sent

    sent = run(scenario())
    assert (len(sent.mission), len(sent.fence), len(sent.rally)) == (6, 5, 1)
    jump = sent.mission[4]
    assert (jump.command, jump.param1) == (177, 2.0)  # QGroundControl's doJumpId 3 is sequence number 2


def test_a_small_plan_is_flown_every_item_reached_then_home_and_landed(drones):
    fleet_under_test = drones(1)
    plan = small_plan(fleet_under_test.homes[0])

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            seen = fleet.states.subscribe(keep=100_000)
            outcome = (await fly_all([Flight(fleet[0], raw_plan(plan))], timeout_s=180))[0]
            return outcome, [s[0] for s in iter(seen.get_nowait, None)]

    outcome, states = run(scenario())
    assert outcome.ok, outcome
    assert outcome.items_reached == outcome.items_total == len(plan.items)
    assert outcome.flight_time_s > 0 and outcome.battery_used_pct > 0
    assert max(s.rel_alt_m for s in states) > 15
    assert any(s.landed_state is LandedState.IN_AIR and s.rel_alt_m > 15 for s in states)
    assert any(s.flight_mode == "return_to_launch" for s in states)
    assert states[-1].on_ground_disarmed


def test_snapshots_come_at_five_hertz_or_more(drones):
    fleet_under_test = drones(1)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            await fleet[0].wait_healthy(30)
            with fleet[0].states.subscribe(keep=1000) as sub:
                await asyncio.sleep(2.0)
                return list(iter(sub.get_nowait, None))

    states = run(scenario())
    assert len(states) >= 10
    assert all(s.link_ok for s in states[-5:])
    assert states[-1].battery_pct > 90 and states[-1].landed_state is LandedState.ON_GROUND


def test_a_waypoint_outside_the_fence_is_refused_at_once_with_the_vehicles_reason(drones):
    fleet_under_test = drones(1)
    plan = small_plan(fleet_under_test.homes[0], outside=True)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            seen = fleet.states.subscribe(keep=100_000)
            flight = Flight(fleet[0], raw_plan(plan), FlightOptions(start_retry_s=15.0))
            await fleet[0].wait_healthy(30)
            started = time.monotonic()
            outcome = (await fly_all([flight], timeout_s=60))[0]
            took = time.monotonic() - started
            await asyncio.sleep(1.0)
            return outcome, took, [s[0] for s in iter(seen.get_nowait, None)]

    outcome, took, states = run(scenario())
    assert not outcome.ok
    assert outcome.error is not None and outcome.error.reason is Reason.FENCE_VIOLATION, outcome.error
    assert "vehicle 1" in str(outcome.error) and "Geofence violation for waypoint 4" in str(outcome.error)
    assert took < 15.0
    assert outcome.flight_time_s == 0  # refused on the ground: never armed
    assert not any(s.armed for s in states) and max(s.rel_alt_m for s in states if s.link_ok) < 1.0


def test_three_vehicles_fly_at_once(drones):
    fleet_under_test = drones(3, speed_factor=15)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            assert [v.state.system_id for v in fleet] != [0, 0, 0]
            homes = fleet_under_test.homes
            flights = [Flight(v, raw_plan(small_plan(home))) for v, home in zip(fleet, homes, strict=True)]
            return await fly_all(flights, timeout_s=420)

    outcomes = run(scenario(), 440)
    assert [o.ok for o in outcomes] == [True, True, True], outcomes


def test_a_vehicle_that_loses_the_mission_just_after_the_upload_gets_it_again(drones):
    """What PX4 SITL fresh from boot can do (its navigator resets the mission manager's count):
    here a second station on the radio clears the mission the moment the vehicle acknowledges it."""
    fleet_under_test = drones(1, relay=True)
    relay = fleet_under_test.relays[0]
    plan = small_plan(fleet_under_test.homes[0])
    parser = mavlink.MAVLink(None)
    other_station = mavlink.MAVLink(None, srcSystem=200, srcComponent=190)
    cleared: list[int] = []  # the vehicle's system id, once cleared

    def clear_once(direction: str, data: bytes) -> bool:
        if direction != "down":
            return True
        for msg in parser.parse_buffer(data) or []:
            if msg.get_type() != "MISSION_ACK" or msg.mission_type != mavlink.MAV_MISSION_TYPE_MISSION:
                continue
            if msg.target_system == 200:
                return False  # the vehicle's answer to the other station is not ours to see
            if not cleared and msg.type == mavlink.MAV_MISSION_ACCEPTED:
                cleared.append(msg.get_srcSystem())
                clear = other_station.mission_clear_all_encode(msg.get_srcSystem(), 1, mavlink.MAV_MISSION_TYPE_MISSION)
                relay.send_to_vehicle(clear.pack(other_station))
        return True

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            v = fleet[0]
            events = fleet.events.subscribe(keep=1000)
            await v.wait_healthy(30)
            relay.tap = clear_once
            sent = await v.upload(plan)
            relay.tap = None
            await v.verify(sent)  # it holds the mission now
            return list(iter(events.get_nowait, None))

    events = run(scenario())
    assert cleared, "the mission upload was never acknowledged through the relay"
    again = [e.message for e in events if e.reason is Reason.VERIFY_FAILED]
    assert again == [f"vehicle 1: mission: sent {len(plan.items)} items, vehicle holds 0; uploading again"], again


def test_a_vehicle_that_keeps_losing_the_mission_fails_the_upload_naming_what_it_holds(drones):
    fleet_under_test = drones(1, relay=True)
    relay = fleet_under_test.relays[0]
    plan = small_plan(fleet_under_test.homes[0])
    parser = mavlink.MAVLink(None)
    other_station = mavlink.MAVLink(None, srcSystem=200, srcComponent=190)

    def clear_every_time(direction: str, data: bytes) -> bool:
        if direction != "down":
            return True
        for msg in parser.parse_buffer(data) or []:
            if msg.get_type() != "MISSION_ACK" or msg.mission_type != mavlink.MAV_MISSION_TYPE_MISSION:
                continue
            if msg.target_system == 200:
                return False
            if msg.type == mavlink.MAV_MISSION_ACCEPTED:
                clear = other_station.mission_clear_all_encode(msg.get_srcSystem(), 1, mavlink.MAV_MISSION_TYPE_MISSION)
                relay.send_to_vehicle(clear.pack(other_station))
        return True

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            await fleet[0].wait_healthy(30)
            relay.tap = clear_every_time
            with pytest.raises(FleetError) as caught:
                await fleet[0].upload(plan)
            relay.tap = None
            return caught.value

    error = run(scenario())
    assert error.reason is Reason.VERIFY_FAILED
    assert str(error) == f"vehicle 1: mission: sent {len(plan.items)} items, vehicle holds 0"


def test_upload_succeeds_through_twenty_percent_packet_loss(drones):
    fleet_under_test = drones(1, relay=True)
    plan = small_plan(fleet_under_test.homes[0], laps=1)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            await fleet[0].wait_healthy(30)
            fleet_under_test.relays[0].loss_fraction = 0.2
            sent = await fleet[0].upload(plan, timeout_s=90)  # verified by download through the same loss
            fleet_under_test.relays[0].loss_fraction = 0.0
            return sent

    sent = run(scenario())
    assert len(sent.mission) == len(plan.items) and fleet_under_test.relays[0].dropped > 0


def test_a_link_outage_mid_mission_is_reported_within_3_s_and_the_mission_carries_on(drones):
    fleet_under_test = drones(1, relay=True)
    plan = small_plan(fleet_under_test.homes[0], laps=2)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            events = fleet.events.subscribe(keep=1000)
            task = asyncio.create_task(fly_all([Flight(fleet[0], raw_plan(plan))], timeout_s=180))
            await fleet[0].wait_for(lambda s: s.mission_reached >= 2, 90, "the first waypoint")
            cut = time.monotonic()
            fleet_under_test.relays[0].outage(5.0)
            lost = await fleet[0].wait_for(lambda s: not s.link_ok, 5, "link loss")
            back = await fleet[0].wait_for(lambda s: s.link_ok, 15, "link back")
            outcome = (await task)[0]
            return outcome, cut, lost, back, list(iter(events.get_nowait, None))

    outcome, cut, lost, _back, events = run(scenario())
    assert lost.monotonic_s <= cut + 0.5  # the snapshot still says when we last heard from it
    reasons = [e.reason for e in events]
    assert Reason.LINK_LOST in reasons and Reason.LINK_RESTORED in reasons
    lost_at = next(e.monotonic_s for e in events if e.reason is Reason.LINK_LOST)
    assert lost_at - cut < 3.0
    assert reasons.count(Reason.MISSION_STARTED) == 1  # not restarted after the outage
    assert outcome.ok, outcome


def fly_until_failure(drones, inject) -> tuple:
    """Fly a long loop, inject a fault after the second waypoint; the outcome, the states and events seen."""
    fleet_under_test = drones(1)
    plan = small_plan(fleet_under_test.homes[0], laps=20)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            events = fleet.events.subscribe(keep=1000)
            seen = fleet.states.subscribe(keep=100_000)
            task = asyncio.create_task(fly_all([Flight(fleet[0], raw_plan(plan))], timeout_s=180))
            at = await fleet[0].wait_for(lambda s: s.mission_reached >= 3, 90, "the second waypoint")
            inject(fleet_under_test)
            outcome = (await task)[0]
            states = [s[0] for s in iter(seen.get_nowait, None)]
            return outcome, at, states, list(iter(events.get_nowait, None))

    return run(scenario())


def test_a_battery_failure_lands_the_vehicle_where_it_is_and_says_why(drones):
    # PX4: the battery reads empty; "Low battery", the failsafe lands at once, wherever the vehicle is.
    outcome, at, states, events = fly_until_failure(drones, lambda d: d.fail_battery(0))
    assert any(s.flight_mode == "land" for s in states)
    battery = [e for e in events if e.reason is Reason.BATTERY_LOW]
    assert battery and battery[0].message.startswith("vehicle 1: ")
    assert outcome.landed and not outcome.mission_complete and not outcome.ok
    down = states[-1]
    assert down.battery_pct < 10 or down.on_ground_disarmed
    # Down near where it failed, not back at its launch point: within 150 m of the second waypoint.
    assert abs(down.lat_deg - at.lat_deg) < 0.0015 and abs(down.lon_deg - at.lon_deg) < 0.0015


def test_a_gps_loss_makes_the_vehicle_land_where_it_is(drones):
    outcome, _at, states, events = fly_until_failure(drones, lambda d: d.lose_gps(0))
    assert any(e.reason is Reason.FAILSAFE for e in events)
    assert any(s.flight_mode == "land" for s in states)
    assert outcome.landed and not outcome.mission_complete and not outcome.ok


def test_no_vehicle_on_the_port_is_a_timeout_naming_the_vehicle():
    async def scenario():
        async with FleetLink.connect(["udpin://127.0.0.1:9"], timeout_s=1.0):
            pass

    with pytest.raises(FleetError) as info:
        run(scenario(), 20)
    assert info.value.reason in (Reason.TIMEOUT, Reason.CONNECTION_FAILED)
    assert str(info.value).startswith("vehicle 1: ")


def test_pause_holds_resume_continues_return_heads_back_and_land_brings_it_down(drones):
    fleet_under_test = drones(1)
    lat, lon = home = fleet_under_test.homes[0]
    plan = small_plan(home)
    far = MissionItem.waypoint(lat + 4 * D, lon + 4 * D, 20.0)
    plan = MissionPlan((*plan.items[:3], far, *plan.items[3:]), plan.home, plan.fence_polygons, (), plan.rally)

    async def scenario():
        async with FleetLink.connect(fleet_under_test.urls, timeout_s=30) as fleet:
            v = fleet[0]
            await v.wait_healthy(30)
            await v.upload(plan)
            await v.launch(retry_for_s=15)
            await v.wait_for(lambda s: s.mission_reached >= 3 and s.rel_alt_m > 15, 90, "the first waypoint")
            await v.pause()
            held = await v.wait_for(lambda s: s.ground_speed_m_s < 0.5, 30, "hold")
            await asyncio.sleep(1.0)
            still = v.state
            await v.resume()
            moving = await v.wait_for(lambda s: s.ground_speed_m_s > 3, 30, "moving again")
            await v.return_to_launch()
            returning = await v.wait_for(lambda s: s.flight_mode == "return_to_launch", 10, "return")
            await asyncio.sleep(3.0 / fleet_under_test.speed_factor)  # three of the vehicle's seconds
            await v.land()
            landing = await v.wait_for(lambda s: s.flight_mode == "land", 10, "land")
            down = await v.wait_for(lambda s: s.on_ground_disarmed, 120, "landed and disarmed")
            return held, still, moving, returning, landing, down

    held, still, moving, returning, landing, down = run(scenario())
    assert held.flight_mode == "hold" and still.flight_mode == "hold"
    # Holding: a second later it is still within a few metres of where it stopped.
    assert abs(still.lat_deg - held.lat_deg) < 3e-5 and abs(still.lon_deg - held.lon_deg) < 3e-5
    assert moving.flight_mode == "mission"
    assert returning.armed and landing.armed
    assert down.mission_reached < len(plan.items)  # landed where it was told to, before the mission's end
    # Landed where it was told to land, not at home or at the rally point: it was heading back from afar.
    assert abs(down.lat_deg - lat) > 2e-4 or abs(down.lon_deg - lon) > 2e-4


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

"""The simulated vehicle flies missions and reacts to faults as PX4 does."""

from __future__ import annotations

import time

from sitl.ground import GroundLink
from sitl.vehicles.model import LandedState, VehicleConfig

LAT, LON = 361280000, -54380000
NAN = float("nan")  # "unset", as MAVSDK sends it
FENCE = [(6, 5001, 4, 0, 0, 0, LAT + dy, LON + dx, 0) for dy, dx in ((-5000, -5000), (-5000, 5000),
         (5000, 5000), (5000, -5000))]  # fmt: skip


def wait_for(predicate, timeout_s: float, vehicle) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate(vehicle.state()):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out; last state {vehicle.state()}")


def start_mission(g: GroundLink, items, fence=None) -> None:
    """Upload, then MAV_CMD_MISSION_START, which arms and starts, as PX4 does."""
    if fence:
        assert g.upload(1, fence, 1).type == 0
    assert g.upload(1, items).type == 0
    deadline = time.monotonic() + 3.0
    while (ack := g.command(1, 300)).result == 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # PX4 checks a fresh mission before it lets it start: "No valid mission" until then
    assert ack.result == 0
    assert g.command(1, 400, 1).result == 0  # armed already: accepted


def test_mission_with_jump_runs_to_landing_and_disarms(sim_fleet):
    vehicle = sim_fleet(1, speed_factor=30).vehicles[0]
    items = [
        (6, 22, 0, 0, 0, 0, LAT, LON, 15),
        (6, 16, 2, 0, 0, 0, LAT + 5000, LON, 15),  # ~55 m north, hold 2 s
        (2, 178, 1, 12, -1, 0, 0, 0, 0),
        (6, 16, 0, 0, 0, 0, LAT + 5000, LON + 5000, 15),
        (2, 177, 1, 1, 0, 0, 0, 0, 0),  # back to seq 1, once
        (2, 20, 0, 0, 0, 0, 0, 0, 0),
    ]
    with GroundLink(vehicle.port) as g:
        assert g.wait_peer()
        start_mission(g, items)
        reached = []
        deadline = time.monotonic() + 40.0
        while not (vehicle.state().mission_finished and not vehicle.state().armed) and time.monotonic() < deadline:
            reached += g.collect(0.2)
        reached += g.collect(0.2)
    state = vehicle.state()
    assert state.reached == (0, 1, 2, 3, 1, 2, 3, 5)  # the jump itself is never "reached"
    # As PX4: one MISSION_ITEM_REACHED per step, naming the last item done (a speed change goes with
    # the waypoint before it).
    said = [m.seq for m in reached if m.get_type() == "MISSION_ITEM_REACHED"]
    assert said == [0, 2, 3, 2, 5], said
    assert state.landed_state == LandedState.ON_GROUND
    assert abs(state.lat_deg - 36.128) < 2e-5 and abs(state.lon_deg + 5.438) < 2e-5
    assert any(m.get_type() == "MISSION_CURRENT" and m.mission_state == 5 for m in reached)


def test_fence_breach_holds_by_default(sim_fleet):
    vehicle = sim_fleet(1, speed_factor=20).vehicles[0]
    with GroundLink(vehicle.port) as g:
        assert g.wait_peer()
        assert g.upload(1, FENCE, 1).type == 0
        assert g.command(1, 400, 1).result == 0
        assert g.command(1, 22, *[NAN] * 7).result == 0
        wait_for(lambda s: s.rel_alt_m > 1.5 and s.mode == "AUTO.LOITER", 10.0, vehicle)
        g.command(1, 192, -1, 1, 0, float("nan"), 36.1295, -5.438, 20.0)  # ~170 m north, past the fence
        wait_for(lambda s: s.lat_deg > 36.1282, 20.0, vehicle)
        assert g.recv("STATUSTEXT", 5.0, where=lambda m: "Geofence" in m.text) is not None
        wait_for(lambda s: s.ground_speed_m_s < 0.2, 10.0, vehicle)
    assert vehicle.state().lat_deg < 36.1295 - 0.0005
    assert vehicle.state().mode == "AUTO.LOITER"


def test_battery_failure_lands_where_it_is_as_px4_does(sim_fleet):
    vehicle = sim_fleet(1, speed_factor=20).vehicles[0]
    with GroundLink(vehicle.port) as g:
        assert g.wait_peer()
        assert g.command(1, 400, 1).result == 0
        assert g.command(1, 22, *[NAN] * 7).result == 0
        wait_for(lambda s: s.rel_alt_m > 1.5, 10.0, vehicle)
        assert g.command(1, 420, 100, 1).result == 0  # MAV_CMD_INJECT_FAILURE: battery off
        wait_for(lambda s: s.mode == "AUTO.LAND" and s.battery_pct < 5.0, 5.0, vehicle)
        texts = [m.text for m in g.collect(0.5) if m.get_type() == "STATUSTEXT"]
        assert "Low battery" in texts and "Failsafe activated" in texts
        wait_for(lambda s: not s.armed, 30.0, vehicle)
        # Down and disarmed, it has a fresh battery for the next sortie (PX4's battery simulator does the same).
        assert vehicle.state().battery_pct == 100.0
        assert g.command(1, 400, 1).result == 0


def test_gps_loss_lands_once_the_position_is_given_up(sim_fleet):
    vehicle = sim_fleet(1, speed_factor=20, config=VehicleConfig(gps_loss_s=3.0)).vehicles[0]
    with GroundLink(vehicle.port) as g:
        assert g.wait_peer()
        assert g.command(1, 400, 1).result == 0
        assert g.command(1, 22, *[NAN] * 7).result == 0
        wait_for(lambda s: s.rel_alt_m > 1.5, 10.0, vehicle)
        vehicle.inject_failure(4, 1)
        wait_for(lambda s: not s.gps_ok, 2.0, vehicle)
        gps = g.recv("GPS_RAW_INT", 3.0, where=lambda m: m.fix_type == 0)
        assert gps is not None
        wait_for(lambda s: s.mode == "AUTO.LAND", 5.0, vehicle)
        wait_for(lambda s: not s.armed, 20.0, vehicle)


def test_link_loss_does_not_stop_a_running_mission(sim_fleet):
    vehicle = sim_fleet(1, speed_factor=30).vehicles[0]
    items = [(6, 22, 0, 0, 0, 0, LAT, LON, 10), (6, 16, 0, 0, 0, 0, LAT + 3000, LON, 10), (2, 20, 0, 0, 0, 0, 0, 0, 0)]
    with GroundLink(vehicle.port) as g:
        assert g.wait_peer()
        start_mission(g, items)
        wait_for(lambda s: s.rel_alt_m > 1.0, 10.0, vehicle)
        vehicle.link_outage(30.0)
        wait_for(lambda s: s.mission_finished and not s.armed, 30.0, vehicle)


def test_battery_lasts_about_25_minutes_at_cruise():
    from sitl.vehicles.physics import Body

    body = Body(VehicleConfig())
    body.z_m = 50.0
    seconds = 0.0
    while body.battery > 0.0 and seconds < 3600:
        body.step(1.0, (body.x_m + 1000.0, 0.0, 50.0), 10.0, powered=True, airborne=True)
        seconds += 1.0
    assert 23 * 60 <= seconds <= 27 * 60

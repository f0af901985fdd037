"""The built-in simulation waits for whoever holds it, as PX4's lockstep waits for its simulator."""

from __future__ import annotations

import threading
import time

import pytest


def test_a_hold_stops_the_simulation_at_its_instant_until_it_moves_on(sim_fleet):
    fleet = sim_fleet(1, speed_factor=10)
    held = fleet.sim_time_s + 1.0
    fleet.hold_at("camera", held)
    time.sleep(0.4)  # four seconds of the drones' time at 10×, were nobody holding
    stopped_at = fleet.sim_time_s
    assert held - 0.02 <= stopped_at <= held + 1e-9, "it stops on the last physics step at or before the hold"
    time.sleep(0.3)
    assert fleet.sim_time_s == stopped_at, "and stays there"
    assert fleet.wait_until(held, threading.Event(), timeout_s=0.1)

    fleet.hold_at("camera", None)
    assert fleet.wait_until(held + 2.0, threading.Event(), timeout_s=2.0), "let go, it runs on"


def test_the_simulation_clock_is_the_drones_own_time(sim_fleet):
    fleet = sim_fleet(1, speed_factor=10)
    fleet.hold_at("camera", fleet.sim_time_s + 0.5)
    time.sleep(0.3)
    # Held, its clock stops with it; its seconds are the drones' seconds, whatever the wall clock does.
    assert fleet.clock() == pytest.approx(fleet.clock_at(fleet.sim_time_s))
    assert fleet.clock_at(fleet.sim_time_s + 60.0) - fleet.clock() == pytest.approx(60.0)
    before = fleet.clock()
    time.sleep(0.2)
    assert fleet.clock() == before

"""The fleet's command rules, without a window: which request makes sense in which state."""

from __future__ import annotations

import pytest

from groundstation.fleet import FleetCommand, FlightMode, LandedState, VehicleState, allowed

ON_PAD = VehicleState(0, link_ok=True, landed_state=LandedState.ON_GROUND, mission_total=-1)
HOLDS_MISSION = VehicleState(0, link_ok=True, landed_state=LandedState.ON_GROUND, mission_total=5)
FLYING = VehicleState(0, link_ok=True, armed=True, landed_state=LandedState.IN_AIR, flight_mode=FlightMode.MISSION,
                      mission_total=5, mission_reached=2)  # fmt: skip
HOLDING = VehicleState(0, link_ok=True, armed=True, landed_state=LandedState.IN_AIR, flight_mode=FlightMode.HOLD,
                       mission_total=5, mission_reached=2)  # fmt: skip
RETURNING = VehicleState(0, link_ok=True, armed=True, landed_state=LandedState.IN_AIR,
                         flight_mode=FlightMode.RETURN_TO_LAUNCH, mission_total=5, mission_reached=5)  # fmt: skip
SILENT = VehicleState(0, link_ok=False, landed_state=LandedState.ON_GROUND, mission_total=5)


@pytest.mark.parametrize(
    ("command", "state", "has_plan", "busy", "expected"),
    [
        (FleetCommand.UPLOAD, ON_PAD, True, (), True),
        (FleetCommand.UPLOAD, ON_PAD, False, (), False),  # nothing to upload
        (FleetCommand.UPLOAD, ON_PAD, True, ("upload",), False),  # one upload at a time
        (FleetCommand.UPLOAD, FLYING, True, (), False),  # not while armed
        (FleetCommand.START, ON_PAD, False, (), False),  # no plan here, none on board
        (FleetCommand.START, HOLDS_MISSION, False, (), True),  # the mission it holds
        (FleetCommand.START, ON_PAD, True, ("fly",), False),  # its sorties are already under way
        (FleetCommand.START, SILENT, True, (), False),  # a vehicle that does not answer
        (FleetCommand.PAUSE, FLYING, False, (), True),
        (FleetCommand.PAUSE, RETURNING, False, (), True),
        (FleetCommand.PAUSE, HOLDING, False, (), False),
        (FleetCommand.RESUME, HOLDING, False, (), True),
        (FleetCommand.RESUME, FLYING, False, (), False),
        (FleetCommand.RETURN, FLYING, False, (), True),
        (FleetCommand.RETURN, RETURNING, False, (), False),
        (FleetCommand.RETURN, ON_PAD, False, (), False),
        (FleetCommand.LAND, RETURNING, False, (), True),
        (FleetCommand.LAND, ON_PAD, False, (), False),
    ],
)
def test_a_command_is_allowed_only_when_it_makes_sense(command, state, has_plan, busy, expected):
    assert allowed(command, state, connected=True, has_plan=has_plan, busy=busy) is expected


def test_nothing_is_allowed_before_the_fleet_is_connected_or_for_a_vehicle_never_heard():
    assert not allowed(FleetCommand.START, HOLDS_MISSION, connected=False, has_plan=True)
    assert not allowed(FleetCommand.START, None, connected=True, has_plan=True)


def test_flight_modes_from_mavsdk_names_and_ones_it_does_not_know():
    assert FlightMode.named("RETURN_TO_LAUNCH") is FlightMode.RETURN_TO_LAUNCH
    assert FlightMode.named("SOMETHING_NEW") is FlightMode.UNKNOWN
    assert f"{FlightMode.MISSION}" == "mission"  # what the terminal and the run folder show

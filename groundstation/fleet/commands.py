"""What an operator may ask of a vehicle, and when each request makes sense.

The rules are the fleet's, not a view's: the app enables its buttons by them, and anything
else that commands vehicles (a script, another station's request) can ask the same question.
"""

from __future__ import annotations

import enum
from collections.abc import Collection

from groundstation.fleet.state import FlightMode, LandedState, VehicleState


class FleetCommand(enum.StrEnum):
    UPLOAD = "upload"  # the vehicle's next plan: mission, fence and rally
    START = "start"  # arm and fly: its sorties when it has plans here, else the mission it holds
    FLY = "fly"  # its sorties, one after another (what START becomes while they last)
    PAUSE = "pause"
    RESUME = "resume"
    RETURN = "return"
    LAND = "land"


PAUSABLE_MODES = frozenset({FlightMode.MISSION, FlightMode.TAKEOFF, FlightMode.RETURN_TO_LAUNCH})


def allowed(
    command: FleetCommand,
    state: VehicleState | None,
    *,
    connected: bool,
    has_plan: bool,
    busy: Collection[str] = (),
) -> bool:
    """Whether `command` makes sense for a vehicle in `state` now: `connected` (the fleet link is up),
    `has_plan` (the station holds plans for it), `busy` (the commands still running for it)."""
    s = state
    if s is None or not connected or not s.link_ok:
        return False
    flying = FleetCommand.FLY in busy or FleetCommand.START in busy
    in_air = s.armed and s.landed_state is not LandedState.ON_GROUND
    match command:
        case FleetCommand.UPLOAD:
            return has_plan and not s.armed and not flying and FleetCommand.UPLOAD not in busy
        case FleetCommand.START:
            return (has_plan or s.mission_total > 0) and not s.armed and not flying and FleetCommand.UPLOAD not in busy
        case FleetCommand.FLY:
            return has_plan and not s.armed and not flying and FleetCommand.UPLOAD not in busy
        case FleetCommand.PAUSE:
            return s.armed and s.flight_mode in PAUSABLE_MODES
        case FleetCommand.RESUME:
            return s.armed and s.flight_mode == FlightMode.HOLD and s.mission_total > 0 and not s.mission_finished
        case FleetCommand.RETURN:
            return in_air and s.flight_mode != FlightMode.RETURN_TO_LAUNCH
        case FleetCommand.LAND:
            return in_air and s.flight_mode != FlightMode.LAND
    raise ValueError(f"unknown fleet command {command!r}")

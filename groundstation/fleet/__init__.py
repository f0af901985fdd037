"""The fleet link: N vehicles over MAVSDK, plain asyncio, the same for the CLI, the tests and the GUI."""

from groundstation.fleet.commands import FleetCommand, allowed
from groundstation.fleet.feed import Feed, Subscription
from groundstation.fleet.link import FleetLink, VehicleLink
from groundstation.fleet.mission import RawItem, RawPlan, differences, raw_plan
from groundstation.fleet.state import FleetError, FleetEvent, FlightMode, LandedState, Reason, Severity, VehicleState

__all__ = [
    "Feed",
    "FleetCommand",
    "FleetError",
    "FleetEvent",
    "FleetLink",
    "FlightMode",
    "LandedState",
    "RawItem",
    "RawPlan",
    "Reason",
    "Severity",
    "Subscription",
    "VehicleLink",
    "VehicleState",
    "allowed",
    "differences",
    "raw_plan",
]

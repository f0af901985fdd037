"""MAVSDK itself takes the simulator for PX4: it connects, sees healthy sensors, arms and takes off."""

from __future__ import annotations

import asyncio

from mavsdk.asyncio import ComponentType, Configuration, Mavsdk
from mavsdk.asyncio.plugins.action import ActionAsync
from mavsdk.asyncio.plugins.telemetry import TelemetryAsync


async def _fly(url: str) -> tuple[float, float]:
    mavsdk = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
    try:
        await mavsdk.add_any_connection(url)
        system = await mavsdk.first_autopilot(10.0)
        assert system is not None, "MAVSDK found no autopilot"
        telemetry, action = TelemetryAsync(system), ActionAsync(system)

        async def healthy() -> None:
            async for health in telemetry.subscribe_health():
                if health.is_global_position_ok and health.is_home_position_ok:
                    return

        await asyncio.wait_for(healthy(), 10.0)
        start = await telemetry.position()
        await action.set_takeoff_altitude(10.0)
        await action.arm()
        await action.takeoff()

        async def climbed():
            async for position in telemetry.subscribe_position():
                if position.relative_altitude_m > 8.0:
                    return position

        end = await asyncio.wait_for(climbed(), 15.0)
        return start.relative_altitude_m, end.relative_altitude_m
    finally:
        mavsdk.destroy()


def test_mavsdk_connects_arms_and_takes_off(sim_vehicle):
    start_m, end_m = asyncio.run(_fly(sim_vehicle.connect_url))
    assert abs(start_m) < 0.5 < 8.0 < end_m
    assert sim_vehicle.state().armed

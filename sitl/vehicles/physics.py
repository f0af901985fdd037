"""A multicopter as a point mass: limited speed, acceleration, climb, descent and yaw rate.

PX4's position controller compensates the wind, so the body flies its commanded ground
track and the wind only shows in the battery: power grows with airspeed. The local frame
is east/north/up metres around home, flat-earth, which is accurate to centimetres over
the few kilometres a patrol covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sitl.vehicles.model import VehicleConfig

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class FlatFrame:
    """East/north metres around an origin, and back to degrees."""

    lat0_deg: float
    lon0_deg: float

    def to_local(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        north = math.radians(lat_deg - self.lat0_deg) * EARTH_RADIUS_M
        east = math.radians(lon_deg - self.lon0_deg) * EARTH_RADIUS_M * math.cos(math.radians(self.lat0_deg))
        return east, north

    def to_deg(self, east_m: float, north_m: float) -> tuple[float, float]:
        lat = self.lat0_deg + math.degrees(north_m / EARTH_RADIUS_M)
        lon = self.lon0_deg + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(self.lat0_deg))))
        return lat, lon


def power_ratio(airspeed_m_s: float, climb_m_s: float) -> float:
    """Electrical power relative to hover.

    Translational lift makes moderate speed a little cheaper than hover and drag makes
    high speed dearer; the curve passes 1.0 at 10 m/s so `battery_capacity_s` of 1500
    gives the 25 minutes a patrol quad manages at cruise.
    """
    s = airspeed_m_s / 10.0
    return 1.0 - 0.15 * s + 0.15 * s * s + 0.08 * max(climb_m_s, 0.0)


class Body:
    """Mutable kinematic state, stepped by the autopilot's thread only."""

    def __init__(self, config: VehicleConfig) -> None:
        self.config = config
        self.x_m = self.y_m = self.z_m = 0.0
        self.vx_m_s = self.vy_m_s = self.vz_m_s = 0.0
        self.yaw_rad = 0.0
        self.battery = 1.0  # fraction of capacity left

    @property
    def ground_speed_m_s(self) -> float:
        return math.hypot(self.vx_m_s, self.vy_m_s)

    def step(
        self, dt_s: float, target: tuple[float, float, float] | None, speed_m_s: float, powered: bool, airborne: bool
    ) -> None:
        """Move towards `target` (east, north, up) at up to `speed_m_s`; None holds still."""
        cfg = self.config
        if target is None or not airborne:
            tx, ty = self.x_m, self.y_m
        else:
            tx, ty = target[0], target[1]
        tz = target[2] if target is not None else self.z_m
        dx, dy = tx - self.x_m, ty - self.y_m
        dist = math.hypot(dx, dy)
        speed = min(speed_m_s, cfg.max_speed_m_s, math.sqrt(2.0 * cfg.accel_m_s2 * dist))
        if dist > 1e-6:
            want_vx, want_vy = dx / dist * speed, dy / dist * speed
        else:
            want_vx = want_vy = 0.0
        dvx, dvy = want_vx - self.vx_m_s, want_vy - self.vy_m_s
        dv = math.hypot(dvx, dvy)
        max_dv = cfg.accel_m_s2 * dt_s
        if dv > max_dv:
            dvx, dvy = dvx / dv * max_dv, dvy / dv * max_dv
        self.vx_m_s += dvx
        self.vy_m_s += dvy
        if not airborne:
            self.vx_m_s = self.vy_m_s = 0.0

        dz = tz - self.z_m
        vz = max(-cfg.descent_m_s, min(cfg.climb_m_s, dz * 1.5))
        self.vz_m_s += max(-max_dv, min(max_dv, vz - self.vz_m_s))
        self.x_m += self.vx_m_s * dt_s
        self.y_m += self.vy_m_s * dt_s
        self.z_m += self.vz_m_s * dt_s
        if self.z_m < 0.0:
            self.z_m, self.vz_m_s = 0.0, 0.0

        if self.ground_speed_m_s > 0.5:
            want_yaw = math.atan2(self.vx_m_s, self.vy_m_s)  # heading from north, clockwise
            err = (want_yaw - self.yaw_rad + math.pi) % (2 * math.pi) - math.pi
            max_yaw = math.radians(cfg.yaw_rate_deg_s) * dt_s
            self.yaw_rad = (self.yaw_rad + max(-max_yaw, min(max_yaw, err))) % (2 * math.pi)

        if powered:
            wind_e, wind_n = cfg.wind_m_s
            airspeed = math.hypot(self.vx_m_s - wind_e, self.vy_m_s - wind_n) if airborne else 0.0
            ratio = power_ratio(airspeed, self.vz_m_s) if airborne else 0.05  # armed on the ground: idle
            self.battery = max(0.0, self.battery - ratio * dt_s / cfg.battery_capacity_s)

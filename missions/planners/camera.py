"""Camera footprint and lane spacing, as QGroundControl's survey computes them.

QGroundControl (CameraCalc): imageSizeSideGround = altitude × sensorWidth ÷ focalLength,
and lateral spacing = imageSizeSideGround × (1 − sideOverlap). The image width in
pixels sets only the ground resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from missions.camera import field_of_view_deg, ground_size_m


@dataclass(frozen=True)
class Camera:
    sensor_width_mm: float = 6.17
    focal_length_mm: float = 3.67  # with 6.17 mm: about 80° horizontal field of view
    image_width_px: int = 1280
    side_overlap: float = 0.2

    def __post_init__(self) -> None:
        for name in ("sensor_width_mm", "focal_length_mm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.image_width_px <= 0:
            raise ValueError("image_width_px must be positive")
        if not 0.0 <= self.side_overlap < 1.0:
            raise ValueError("side overlap must be at least 0 % and below 100 %")

    @property
    def horizontal_fov_deg(self) -> float:
        return field_of_view_deg(self.sensor_width_mm, self.focal_length_mm)

    def footprint_width_m(self, altitude_m: float) -> float:
        """Ground width of one image, looking straight down."""
        return ground_size_m(altitude_m, self.sensor_width_mm, self.focal_length_mm)

    def lane_spacing_m(self, altitude_m: float) -> float:
        return self.footprint_width_m(altitude_m) * (1.0 - self.side_overlap)

    def ground_resolution_cm_px(self, altitude_m: float) -> float:
        return 100.0 * self.footprint_width_m(altitude_m) / self.image_width_px


@dataclass(frozen=True)
class FlightModel:
    """How long a multicopter takes to fly a path.

    Straight legs at cruise speed; every corner costs the time to slow down and speed up
    again, scaled by how sharp it is (PX4 slows for corners, a U-turn is a full stop).
    """

    speed_m_s: float = 10.0
    altitude_m: float = 60.0
    climb_m_s: float = 3.0
    descent_m_s: float = 1.5
    accel_m_s2: float = 3.0

    def __post_init__(self) -> None:
        if self.speed_m_s <= 0:
            raise ValueError("speed must be positive")

    @property
    def takeoff_landing_s(self) -> float:
        return self.altitude_m / self.climb_m_s + self.altitude_m / self.descent_m_s

    def corner_s(self, turn_rad: float) -> float:
        return (self.speed_m_s / self.accel_m_s2) * (1.0 - math.cos(turn_rad)) / 2.0

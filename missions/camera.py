"""Pinhole geometry: field of view, focal length and ground footprint.

The survey planner reads a camera as a datasheet does (sensor millimetres and focal
length in millimetres); the onboard camera model reads it in pixels. The pinhole
relations are the same in either unit, so both take them from here and cannot drift
apart: ``size`` and ``focal_length`` only need to be in the same unit.
"""

from __future__ import annotations

import math


def field_of_view_deg(size: float, focal_length: float) -> float:
    """The angle an image of this size subtends through a lens of this focal length."""
    return math.degrees(2.0 * math.atan((size / 2.0) / focal_length))


def focal_length(size: float, field_of_view_deg: float) -> float:
    """The focal length, in the unit of ``size``, that gives an image this field of view."""
    return (size / 2.0) / math.tan(math.radians(field_of_view_deg) / 2.0)


def ground_size_m(altitude_m: float, size: float, focal_length: float) -> float:
    """How much ground an image of this size covers, looking straight down from the altitude."""
    return altitude_m * size / focal_length

"""PX4's geofence from uploaded fence items: polygons and circles, inclusion and exclusion.

Ray casting in the vehicle's flat frame instead of shapely: the check runs for every
vehicle several times a second and the shapes are a handful of vertices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from missions.plan import RawItem
from sitl.vehicles.physics import FlatFrame

POLY_IN, POLY_OUT, CIRCLE_IN, CIRCLE_OUT = 5001, 5002, 5003, 5004


@dataclass(frozen=True)
class Shape:
    inclusion: bool
    vertices_m: tuple[tuple[float, float], ...] = ()
    centre_m: tuple[float, float] = (0.0, 0.0)
    radius_m: float = 0.0

    def contains(self, x_m: float, y_m: float) -> bool:
        if not self.vertices_m:
            return math.hypot(x_m - self.centre_m[0], y_m - self.centre_m[1]) <= self.radius_m
        inside = False
        pts = self.vertices_m
        j = len(pts) - 1
        for i in range(len(pts)):
            xi, yi = pts[i]
            xj, yj = pts[j]
            if (yi > y_m) != (yj > y_m) and x_m < (xj - xi) * (y_m - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
        return inside


@dataclass(frozen=True)
class Fence:
    shapes: tuple[Shape, ...] = ()

    @classmethod
    def from_items(cls, items: list[RawItem], frame: FlatFrame) -> Fence:
        """Build the fence, or raise ValueError saying what is wrong with the items."""
        shapes: list[Shape] = []
        i = 0
        while i < len(items):
            item = items[i]
            if item.command in (POLY_IN, POLY_OUT):
                count = int(item.param1)
                group = items[i : i + count]
                if count < 3 or len(group) < count or any(g.command != item.command for g in group):
                    raise ValueError(f"fence polygon at item {i} has a bad vertex count ({count})")
                vertices = tuple(frame.to_local(g.lat_deg, g.lon_deg) for g in group)
                shapes.append(Shape(item.command == POLY_IN, vertices_m=vertices))
                i += count
            elif item.command in (CIRCLE_IN, CIRCLE_OUT):
                if item.param1 <= 0:
                    raise ValueError(f"fence circle at item {i} has no radius")
                centre = frame.to_local(item.lat_deg, item.lon_deg)
                shapes.append(Shape(item.command == CIRCLE_IN, centre_m=centre, radius_m=item.param1))
                i += 1
            else:
                raise ValueError(f"item {i} is command {item.command}, not a fence item")
        return cls(tuple(shapes))

    def contains(self, x_m: float, y_m: float) -> bool:
        """Inside some inclusion (if there is any) and outside every exclusion."""
        inclusions = [s for s in self.shapes if s.inclusion]
        if inclusions and not any(s.contains(x_m, y_m) for s in inclusions):
            return False
        return not any(s.contains(x_m, y_m) for s in self.shapes if not s.inclusion)

    @property
    def is_empty(self) -> bool:
        return not self.shapes

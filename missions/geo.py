"""One local metric frame per site: geometry in metres, degrees only at the edges.

Shapely has no coordinate systems, so every buffer, area and distance is computed
after projecting lon/lat into an azimuthal equidistant frame centred on the site
(x east, y north, metres). Over a port or a stretch of coast (tens of km) its
distortion is far below a GPS error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class LocalFrame:
    """East/north metres around an origin given in degrees."""

    origin_lat_deg: float
    origin_lon_deg: float
    _forward: Transformer = field(init=False, repr=False, compare=False)
    _inverse: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        proj = (
            f"+proj=aeqd +lat_0={self.origin_lat_deg:.9f} +lon_0={self.origin_lon_deg:.9f} "
            "+x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
        )
        object.__setattr__(self, "_forward", Transformer.from_crs("EPSG:4326", proj, always_xy=True))
        object.__setattr__(self, "_inverse", Transformer.from_crs(proj, "EPSG:4326", always_xy=True))

    @classmethod
    def around(cls, geometry_deg: BaseGeometry) -> LocalFrame:
        """A frame centred on a lon/lat geometry's bounding box."""
        min_lon, min_lat, max_lon, max_lat = geometry_deg.bounds
        # Out-of-range input is reported by validation; the frame itself must still exist.
        lat = min(max((min_lat + max_lat) / 2.0, -89.0), 89.0)
        lon = min(max((min_lon + max_lon) / 2.0, -180.0), 180.0)
        return cls(lat, lon)

    def to_local(self, geometry_deg: BaseGeometry) -> BaseGeometry:
        """Project a lon/lat geometry into metres."""
        return shapely.transform(geometry_deg, self._project_array)

    def to_geo(self, geometry_m: BaseGeometry) -> BaseGeometry:
        """Project a metric geometry back to lon/lat."""
        return shapely.transform(geometry_m, self._unproject_array)

    def xy(self, lon_deg: float, lat_deg: float) -> tuple[float, float]:
        x, y = self._forward.transform(lon_deg, lat_deg)
        return float(x), float(y)

    def lonlat(self, x_m: float, y_m: float) -> tuple[float, float]:
        lon, lat = self._inverse.transform(x_m, y_m)
        return float(lon), float(lat)

    def _project_array(self, coords: np.ndarray) -> np.ndarray:
        x, y = self._forward.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def _unproject_array(self, coords: np.ndarray) -> np.ndarray:
        lon, lat = self._inverse.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])


def circle_polygon(
    center: shapely.Point, radius_m: float, segments: int = 64, enclosing: bool = True
) -> shapely.Polygon:
    """A polygon for a circle: enclosing it (edges tangent) or inscribed in it.

    A keep-out circle must never be under-approximated: an inscribed polygon would let a
    path clip the real circle between two vertices. A keep-in circle is the reverse.
    """
    outer_radius_m = radius_m / math.cos(math.pi / segments) if enclosing else radius_m
    angles = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
    xs = center.x + outer_radius_m * np.cos(angles)
    ys = center.y + outer_radius_m * np.sin(angles)
    return shapely.Polygon(np.column_stack([xs, ys]))


def haversine_m(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Great-circle distance; used only where no site frame exists yet."""
    p1, p2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dp, dl = p2 - p1, math.radians(lon2_deg - lon1_deg)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))

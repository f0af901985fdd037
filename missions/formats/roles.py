"""Roles for features that do not say what they are.

Operators bring plain GeoJSON and Google Earth KML with no `role` on anything. Rather
than refuse them, each format reader hands its role-less features here and gets a
clear, reported default: the largest polygon is the operating area when the file names
none, the other polygons are watch zones of risk 1, points are launch points and lines
are the route to loop through. Every default is a warning the user sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shapely.geometry.base import BaseGeometry

from missions.site import DEFAULT_WATCH_RISK, Role, Zone


@dataclass(frozen=True)
class Unassigned:
    """A feature read from a file whose role was not given."""

    name: str
    shape_deg: BaseGeometry
    risk: int | None = None  # a risk the file gives without a role is kept for a default watch zone


def assign_defaults(
    source: str, zones: Sequence[Zone], unassigned: Sequence[Unassigned]
) -> tuple[list[Zone], list[Unassigned], list[str]]:
    """Give role-less features a role; returns (zones, lines for the route, warnings).

    Lines come back unassigned because they are not zones: the reader turns them into
    the site's route.
    """
    out = list(zones)
    warnings: list[str] = []
    polygons = [u for u in unassigned if u.shape_deg.geom_type == "Polygon"]
    has_keep_in = any(z.role is Role.OPERATING_AREA for z in zones)
    largest = max(polygons, key=lambda u: u.shape_deg.area) if polygons and not has_keep_in else None
    lines: list[Unassigned] = []
    for u in unassigned:
        kind = u.shape_deg.geom_type
        if u is largest:
            out.append(Zone(Role.OPERATING_AREA, u.name, u.shape_deg))
            warnings.append(f"{source}: {u.name!r} has no role; taken as the operating area (the largest polygon)")
        elif kind == "Polygon":
            risk = u.risk or DEFAULT_WATCH_RISK
            out.append(Zone(Role.WATCH, u.name, u.shape_deg, risk=risk))
            warnings.append(f"{source}: {u.name!r} has no role; taken as a watch zone of risk {risk}")
        elif kind == "Point":
            out.append(Zone(Role.LAUNCH, u.name, u.shape_deg))
            warnings.append(f"{source}: {u.name!r} has no role; taken as a launch point")
        elif kind == "LineString":
            lines.append(u)
            warnings.append(f"{source}: {u.name!r} has no role; taken as the route for the loop pattern")
    return out, lines, warnings


def with_site_altitude(zones: Sequence[Zone], default_m: float) -> float:
    """The site's altitude limit: the lowest limit any operating area states, else the default."""
    limits = [z.max_altitude_m for z in zones if z.role is Role.OPERATING_AREA and z.max_altitude_m is not None]
    return min(limits) if limits else default_m

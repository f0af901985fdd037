"""A planned patrol written out: QGroundControl `.plan` files per drone and sortie, and the routes
as GeoJSON and KML. `borderwatch plan` and the app's planner panel both write through here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from missions.formats.geojson import write_geojson
from missions.formats.kml import write_kml
from missions.formats.qgc_plan import write_plan
from missions.planners.output import PlannedSortie
from missions.site import Route, RoutePoint, Site


def sortie_label(sortie: PlannedSortie, drones: int) -> str:
    return f"drone {sortie.drone} sortie {sortie.number}" if drones > 1 else f"sortie {sortie.number}"


def sortie_route(sortie: PlannedSortie, drones: int) -> Route:
    """The path a sortie flies once, named as the maps and files name it."""
    points = tuple(RoutePoint(lat, lon, alt) for lon, lat, alt in sortie.route_deg)
    return Route(sortie_label(sortie, drones), points, {"drone": sortie.drone, "sortie": sortie.number})


def plan_file_names(output: str | Path, planned: Sequence[PlannedSortie], drones: int) -> list[Path]:
    """OUT.plan for one flight; OUT-D.plan per drone; OUT-D-sK.plan (OUT-sK.plan) per sortie."""
    out = Path(output)
    stem = out.with_suffix("") if out.suffix == ".plan" else out
    per_drone = {p.drone: 0 for p in planned}
    for p in planned:
        per_drone[p.drone] += 1
    names = []
    for p in planned:
        name = str(stem)
        if drones > 1:
            name += f"-{p.drone}"
        if per_drone[p.drone] > 1:
            name += f"-s{p.number}"
        names.append(Path(name + ".plan"))
    return names


def export_patrol(
    site: Site,
    planned: Sequence[PlannedSortie],
    drones: int,
    *,
    plan: str | Path | None = None,
    geojson: str | Path | None = None,
    kml: str | Path | None = None,
) -> list[Path]:
    """Write what is asked for (`plan`: the name the .plan files are derived from); the files
    written, in that order. OSError as the file system raises it."""
    written: list[Path] = []
    if plan is not None:
        for path, sortie in zip(plan_file_names(plan, planned, drones), planned, strict=True):
            written.append(write_plan(sortie.plan, path))
    routes = [sortie_route(p, drones) for p in planned]
    if geojson is not None:
        written.append(write_geojson(site, geojson, routes))
    if kml is not None:
        written.append(write_kml(site, kml, routes))
    return written

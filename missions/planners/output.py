"""From a metric patrol to what vehicles and maps take: missions in degrees.

Each sortie becomes one QGroundControl mission: take-off at the launch point, cruise
speed, the waypoints of the sortie (the routed way home included, because PX4's RTL
flies straight and could cut a no-fly zone), then return-to-launch from right above it.
A repeated lap becomes a DO_JUMP back to the lap's second point.
"""

from __future__ import annotations

from dataclasses import dataclass

from missions.plan import MissionItem, MissionPlan, Waypoint
from missions.planners.paths import dedupe
from missions.planners.patrol import Patrol, Sortie
from missions.site import fence_from_site


@dataclass(frozen=True)
class PlannedSortie:
    drone: int
    number: int
    plan: MissionPlan
    route_deg: tuple[tuple[float, float, float], ...]  # (lon, lat, alt) of the path flown once


def _lonlat(patrol: Patrol, p: tuple[float, float]) -> tuple[float, float]:
    return patrol.site.frame.lonlat(p[0], p[1])


def sortie_plan(patrol: Patrol, sortie: Sortie) -> PlannedSortie:
    request = patrol.request
    alt = request.altitude_m
    polygons, circles, rally = fence_from_site(patrol.site)
    launch_lon, launch_lat = _lonlat(patrol, sortie.path_m[0])
    items: list[MissionItem] = [
        MissionItem.takeoff(launch_lat, launch_lon, alt),
        MissionItem.change_speed(request.speed_m_s),
    ]
    # Waypoint i of the path becomes the item at this position; DO_JUMP needs it.
    position_of: dict[int, int] = {}
    path = list(sortie.path_m)
    for i, p in enumerate(path[1:], start=1):
        lon, lat = _lonlat(patrol, p)
        items.append(MissionItem.waypoint(lat, lon, alt))
        position_of[i] = len(items)  # doJumpId: 1-based
        if sortie.loop and i == sortie.loop[1] and sortie.laps > 1:
            items.append(MissionItem.jump(position_of[sortie.loop[0] + 1], sortie.laps - 1))
    items.append(MissionItem.return_to_launch())
    meta = {
        "drone": sortie.drone,
        "sortie": sortie.number,
        "pattern": request.pattern.value,
        "laps": sortie.laps,
        "start_delay_s": round(sortie.start_delay_s, 1),
        "flight_time_s": round(sortie.time_s, 1),
        "length_m": round(sortie.length_m, 1),
    }
    plan = MissionPlan(
        items=tuple(items),
        home=Waypoint(launch_lat, launch_lon, 0.0),
        fence_polygons=polygons,
        fence_circles=circles,
        rally=rally,
        cruise_speed_m_s=request.speed_m_s,
        hover_speed_m_s=min(request.speed_m_s, 5.0),
        name=f"{patrol.site.name} drone {sortie.drone} sortie {sortie.number}",
        meta=meta,
    )
    route = tuple((*_lonlat(patrol, p), alt) for p in dedupe(path))
    return PlannedSortie(sortie.drone, sortie.number, plan, route)


def sortie_plans(patrol: Patrol) -> list[PlannedSortie]:
    return [sortie_plan(patrol, s) for s in patrol.sorties]

"""From a site and a request to every sortie of every drone.

The orchestration is the same for all patterns: find the safe space a drone can reach
from its launch point, build the work (a coverage path, or a closed lap), share it out
among the drones, and cut each drone's share into sorties that fit one battery.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import shapely
from shapely.geometry.base import BaseGeometry

from missions.errors import InputError, PlanningError, RequestError
from missions.planners.camera import Camera, FlightModel
from missions.planners.cycles import Lap, coast_lap, loop_lap, perimeter_lap, risk_lap
from missions.planners.paths import dedupe, flight_time_s, rotate_closed
from missions.planners.routing import Point2, Router, path_length
from missions.planners.sorties import WorkPath, balance, split_sorties
from missions.site import RoutePoint, Site
from missions.validation import check_altitude

# A plan whose lanes alone would be longer than this is a typo in the spacing.
_MAX_PLAN_KM = 20_000.0


class Pattern(enum.Enum):
    COVERAGE = "coverage"
    PERIMETER = "perimeter"
    RISK = "risk"
    LOOP = "loop"


class Along(enum.Enum):
    BOUNDARY = "boundary"
    COAST = "coast"


@dataclass(frozen=True)
class PatrolRequest:
    pattern: Pattern = Pattern.COVERAGE
    altitude_m: float = 60.0
    spacing_m: float | None = None  # None: from the camera
    camera: Camera = field(default_factory=Camera)
    drones: int = 1
    speed_m_s: float = 10.0
    endurance_min: float | None = None
    reserve_pct: float = 20.0
    margin_m: float = 10.0
    standoff_m: float | None = None  # perimeter and coast: default half a footprint
    along: Along | None = None  # perimeter: default the coast when the site has one
    route: tuple[RoutePoint, ...] | None = None  # loop: default the site's own route
    route_source: str | None = None

    @property
    def footprint_m(self) -> float:
        return self.camera.footprint_width_m(self.altitude_m)

    @property
    def lane_spacing_m(self) -> float:
        return self.spacing_m if self.spacing_m is not None else self.camera.lane_spacing_m(self.altitude_m)

    @property
    def flight_model(self) -> FlightModel:
        return FlightModel(speed_m_s=self.speed_m_s, altitude_m=self.altitude_m)

    @property
    def budget_s(self) -> float | None:
        if self.endurance_min is None:
            return None
        return self.endurance_min * 60.0 * (1.0 - self.reserve_pct / 100.0)


@dataclass(frozen=True)
class Sortie:
    """One flight: from the launch point and back to it.

    When ``loop`` is set, the stretch path_m[loop[0]:loop[1] + 1] is a lap flown ``laps``
    times (a DO_JUMP in the mission). ``start_delay_s`` staggers take-offs so that drones
    reach the lap together and stay evenly phased around it, without burning battery
    hovering.
    """

    drone: int
    number: int
    path_m: tuple[Point2, ...]
    time_s: float
    length_m: float
    loop: tuple[int, int] | None = None
    laps: int = 1
    start_delay_s: float = 0.0


@dataclass(frozen=True)
class Patrol:
    site: Site
    request: PatrolRequest
    sorties: tuple[Sortie, ...]
    area_m: BaseGeometry  # what the patrol is meant to see
    lap: Lap | None = None
    lap_time_s: float | None = None
    phase_offsets_m: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def drones(self) -> int:
        return self.request.drones

    def sorties_of(self, drone: int) -> list[Sortie]:
        return [s for s in self.sorties if s.drone == drone]


def check_request(site: Site, request: PatrolRequest) -> None:
    source = site.source
    if request.drones < 1:
        raise RequestError(source, "drones", "the number of drones", f"must be at least 1, got {request.drones}")
    if not 0.5 <= request.speed_m_s <= 30.0:
        raise RequestError(
            source,
            "speed_m_s",
            "cruise speed",
            f"{request.speed_m_s:g} m/s is outside what a multicopter flies (0.5–30)",
        )
    if request.endurance_min is not None and request.endurance_min <= 0:
        raise RequestError(
            source, "endurance_min", "battery endurance", f"must be positive, got {request.endurance_min:g} min"
        )
    if not 0.0 <= request.reserve_pct < 100.0:
        raise RequestError(
            source, "reserve_pct", "battery reserve", f"must be from 0 to below 100 %, got {request.reserve_pct:g}"
        )
    if request.spacing_m is not None and request.spacing_m <= 0:
        raise RequestError(source, "spacing_m", "lane spacing", f"must be positive, got {request.spacing_m:g} m")
    if request.margin_m < 0:
        raise RequestError(
            source, "margin_m", "margin from the fences", f"must not be negative, got {request.margin_m:g} m"
        )
    if request.standoff_m is not None and request.standoff_m < 0:
        raise RequestError(source, "standoff_m", "standoff", f"must not be negative, got {request.standoff_m:g} m")
    check_altitude(site, request.altitude_m)
    if site.keep_in_m is None:
        raise InputError(source, "the site has no operating area (keep-in): add one before planning")


def _reachable(site: Site, request: PatrolRequest, launches: list[shapely.Point]) -> tuple[BaseGeometry, list[str]]:
    """The safe space, limited to the part the launch points can reach, plus take-off access."""
    free = site.free_space(0.0)
    safe = site.free_space(request.margin_m)
    # A launch point near an edge sits inside the margin: give it a way out to open space.
    access = [p.buffer(request.margin_m * 2 + 1.0, quad_segs=8).intersection(free) for p in launches]
    safe = shapely.union_all([safe, *access])
    parts = list(getattr(safe, "geoms", [safe]))
    keep = [g for g in parts if any(g.buffer(1e-3).covers(p) for p in launches)]
    if not keep:
        raise PlanningError(f"{site.source}: no launch point reaches the safe operating area")
    warnings = []
    lost = sum(g.area for g in parts if g not in keep)
    if lost > 1.0:
        warnings.append(
            f"{site.source}: {lost:,.0f} m² of the operating area cannot be reached from a launch point "
            f"without crossing a no-fly zone or its {request.margin_m:g} m margin; it is left out"
        )
    return shapely.union_all(keep), warnings


def plan_patrol(site: Site, request: PatrolRequest, progress: Callable[[float], None] | None = None) -> Patrol:
    check_request(site, request)
    if not site.launch:
        raise InputError(site.source, "the site has no launch point: add a Point with role 'launch'")
    launches_pt = site.launch_points_m()
    safe, warnings = _reachable(site, request, launches_pt)
    router = Router(safe)
    launches = [(p.x, p.y) for p in launches_pt]
    drone_launch = [launches[k % len(launches)] for k in range(request.drones)]
    model = request.flight_model
    report = progress or (lambda _f: None)
    area = site.free_space(0.0).intersection(safe.buffer(request.margin_m + request.lane_spacing_m))
    if request.pattern is Pattern.COVERAGE:
        patrol = _coverage(site, request, router, area, drone_launch, model, report)
    else:
        patrol = _cyclic(site, request, router, area, drone_launch, model)
    report(1.0)
    return Patrol(
        patrol.site,
        patrol.request,
        patrol.sorties,
        patrol.area_m,
        patrol.lap,
        patrol.lap_time_s,
        patrol.phase_offsets_m,
        (*warnings, *patrol.warnings),
    )


def _coverage(site, request, router, area, drone_launch, model, report) -> Patrol:
    from missions.planners.coverage import coverage_path

    spacing = request.lane_spacing_m
    if area.area / spacing / 1000.0 > _MAX_PLAN_KM:
        raise InputError(
            site.source,
            f"lanes {spacing:g} m apart over {area.area / 1e6:.1f} km² would be {area.area / spacing / 1000:,.0f} km "
            "long; raise the lane spacing or the altitude",
        )
    cover = coverage_path(
        area,
        router.free_space,
        spacing,
        drone_launch[0],
        drone_launch[0],
        router=router,
        progress=lambda f: report(0.8 * f),
    )
    works = [WorkPath(cover.path, launch, router, model) for launch in drone_launch]
    legs = balance(works, request.budget_s)
    sorties: list[Sortie] = []
    for k, (work, leg) in enumerate(zip(works, legs, strict=True), start=1):
        for number, part in enumerate(split_sorties(work, leg.start_m, leg.end_m, request.budget_s), start=1):
            sorties.append(_sortie(k, number, work.flown(part), model))
        report(0.8 + 0.2 * k / len(works))
    return Patrol(site, request, tuple(sorties), area)


def _sortie(drone: int, number: int, path: list[Point2], model: FlightModel) -> Sortie:
    return Sortie(drone, number, tuple(path), flight_time_s(path, model, with_takeoff=True), path_length(path))


def _lap(site: Site, request: PatrolRequest, router: Router, start: Point2) -> Lap:
    footprint = request.footprint_m
    standoff = request.standoff_m if request.standoff_m is not None else footprint / 2
    if request.pattern is Pattern.PERIMETER:
        along = request.along or (Along.COAST if site.coastline is not None else Along.BOUNDARY)
        if along is Along.COAST:
            return coast_lap(site, router, standoff)
        return perimeter_lap(site, router, max(standoff, request.margin_m))
    if request.pattern is Pattern.RISK:
        return risk_lap(site, router, footprint, start)
    route = request.route if request.route is not None else site.route
    source = request.route_source or site.source
    if not route:
        raise InputError(
            source, "the loop pattern needs a route: a LineString in the site file, a .plan mission, or a route file"
        )
    points = [site.frame.xy(p.lon_deg, p.lat_deg) for p in route]
    labels = [f"route point {i} ({p.lat_deg:.6f}, {p.lon_deg:.6f})" for i, p in enumerate(route, start=1)]
    for i, p in enumerate(route, start=1):
        if p.alt_m is not None and p.alt_m > site.max_altitude_m:
            raise InputError(
                source, f"route point {i} is at {p.alt_m:g} m, above the site's limit of {site.max_altitude_m:g} m"
            )
    return loop_lap(site, router, points, labels)


def _cyclic(site, request, router, area, drone_launch, model) -> Patrol:
    lap = _lap(site, request, router, drone_launch[0])
    lap_len = path_length(lap.points)
    lap_s = flight_time_s(lap.points, model)
    n = request.drones
    offsets = tuple(lap_len * k / n for k in range(n))
    entries = [rotate_closed(lap.points, off) for off in offsets]
    ins = [router.path(drone_launch[k], entries[k][0]) for k in range(n)]
    outs = [router.path(entries[k][0], drone_launch[k]) for k in range(n)]
    in_s = [flight_time_s(p, model) for p in ins]
    # Everyone starts the lap together, so the drones stay a lap/N apart.
    start_s = max(in_s)
    budget = request.budget_s
    sorties: list[Sortie] = []
    warnings: list[str] = []
    for k in range(n):
        delay = start_s - in_s[k]
        fixed = in_s[k] + flight_time_s(outs[k], model) + model.takeoff_landing_s
        laps = 1 if budget is None or lap_s <= 0 else math.floor((budget - fixed) / lap_s)
        if laps >= 1:
            path = dedupe([*ins[k], *entries[k][1:], *outs[k][1:]])
            i = len(dedupe(ins[k])) - 1
            j = i + len(entries[k]) - 1
            length = path_length(ins[k]) + laps * lap_len + path_length(outs[k])
            sorties.append(Sortie(k + 1, 1, tuple(path), fixed + laps * lap_s, length, (i, j), laps, delay))
            continue
        work = WorkPath(entries[k], drone_launch[k], router, model)
        try:
            legs = split_sorties(work, 0.0, work.length_m, budget)
        except PlanningError as exc:
            raise PlanningError(
                f"{site.source}: drone {k + 1}: {exc}; raise the battery endurance or lower the reserve"
            ) from None
        warnings.append(
            f"drone {k + 1}: one lap ({lap_s / 60:.1f} min) does not fit one battery; "
            f"it is flown in {len(legs)} sorties"
        )
        for number, leg in enumerate(legs, start=1):
            sorties.append(_sortie(k + 1, number, work.flown(leg), model))
    return Patrol(site, request, tuple(sorties), area, lap, lap_s, offsets, tuple(warnings))

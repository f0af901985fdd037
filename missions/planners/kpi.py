"""What a plan achieves, in numbers an operator can compare."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import shapely

from missions.planners.paths import cumulative
from missions.planners.patrol import Patrol, Pattern
from missions.site import Site


@dataclass(frozen=True)
class ZoneRevisit:
    name: str
    risk: int
    visits_per_lap: int  # passes of one drone's camera over the zone in one lap
    mean_interval_s: float | None  # between consecutive passes of any drone
    max_interval_s: float | None


@dataclass(frozen=True)
class DroneKpi:
    drone: int
    sorties: int
    length_m: float
    flight_time_s: float
    start_delay_s: float  # take off this long after the first drone, to keep the drones evenly phased


@dataclass(frozen=True)
class Kpis:
    site: str
    pattern: str
    drones: int
    sorties: int
    altitude_m: float
    speed_m_s: float
    lane_spacing_m: float
    footprint_m: float
    area_m2: float
    path_length_m: float
    flight_time_s: float  # the longest drone's, all sorties: how long the patrol takes
    total_flight_time_s: float  # all drones together: battery and pilot hours
    lower_bound_m: float  # area ÷ lane spacing
    length_ratio: float  # path length ÷ lower bound
    seen_share: float  # share of the area within the camera's footprint of the path
    lap_time_s: float | None
    per_drone: tuple[DroneKpi, ...]
    revisits: tuple[ZoneRevisit, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def _seen_share(patrol: Patrol) -> float:
    area = patrol.area_m
    if area.area <= 0:
        return 0.0
    lines = [shapely.LineString(s.path_m) for s in patrol.sorties if len(s.path_m) >= 2]
    # Simplifying by a tenth of a footprint changes the seen band by far less than a pixel row.
    footprint = patrol.request.footprint_m
    band = shapely.union_all([line.simplify(footprint / 10).buffer(footprint / 2, quad_segs=2) for line in lines])
    return float(area.intersection(band).area / area.area)


def _entries(lap: np.ndarray, arc: np.ndarray, zone: shapely.Geometry, step_m: float) -> list[float]:
    """Arc lengths where the lap's camera footprint comes onto the zone (a lap is circular)."""
    total = float(arc[-1])
    s = np.arange(0.0, total, step_m)
    xs = np.interp(s, arc, lap[:, 0])
    ys = np.interp(s, arc, lap[:, 1])
    inside = shapely.contains_xy(zone, xs, ys)
    if inside.all():
        return [0.0]
    rising = np.flatnonzero(inside & ~np.roll(inside, 1))
    return [float(s[i]) for i in rising]


def _revisits(site: Site, patrol: Patrol) -> tuple[ZoneRevisit, ...]:
    out = []
    lap_pts = np.asarray(patrol.lap.points, dtype=float) if patrol.lap else None
    for zone in site.watch:
        risk = int(zone.risk or 1)
        if lap_pts is None or not patrol.lap_time_s:
            out.append(ZoneRevisit(zone.name, risk, 0, None, None))
            continue
        seen_from = site.local(zone).buffer(patrol.request.footprint_m / 2)
        shapely.prepare(seen_from)
        arc = cumulative(lap_pts)
        total = float(arc[-1])
        scheduled = [
            s for name, s in zip(patrol.lap.visits, patrol.lap.visit_starts_m, strict=True) if name == zone.name
        ]
        # The risk pattern's schedule counts a zone visited twice in a row twice; the footprint alone would merge them.
        entries = scheduled or _entries(lap_pts, arc, seen_from, step_m=max(total / 20000.0, 2.0))
        if not entries:
            out.append(ZoneRevisit(zone.name, risk, 0, None, None))
            continue
        passes = sorted((e - off) % total for e in entries for off in patrol.phase_offsets_m or (0.0,))
        gaps = np.diff([*passes, passes[0] + total])
        to_s = patrol.lap_time_s / total
        out.append(ZoneRevisit(zone.name, risk, len(entries), float(gaps.mean() * to_s), float(gaps.max() * to_s)))
    return tuple(out)


def compute_kpis(patrol: Patrol) -> Kpis:
    request = patrol.request
    per_drone = []
    for drone in range(1, patrol.drones + 1):
        mine = patrol.sorties_of(drone)
        per_drone.append(
            DroneKpi(
                drone,
                len(mine),
                sum(s.length_m for s in mine),
                sum(s.time_s for s in mine),
                mine[0].start_delay_s if mine else 0.0,
            )
        )
    length = sum(s.length_m for s in patrol.sorties)
    spacing = request.lane_spacing_m
    lower = patrol.area_m.area / spacing
    return Kpis(
        site=patrol.site.name,
        pattern=request.pattern.value,
        drones=patrol.drones,
        sorties=len(patrol.sorties),
        altitude_m=request.altitude_m,
        speed_m_s=request.speed_m_s,
        lane_spacing_m=spacing,
        footprint_m=request.footprint_m,
        area_m2=float(patrol.area_m.area),
        path_length_m=length,
        flight_time_s=max((d.flight_time_s for d in per_drone), default=0.0),
        total_flight_time_s=sum(d.flight_time_s for d in per_drone),
        lower_bound_m=lower,
        length_ratio=length / lower if lower > 0 else math.inf,
        seen_share=_seen_share(patrol),
        lap_time_s=patrol.lap_time_s,
        per_drone=tuple(per_drone),
        revisits=_revisits(patrol.site, patrol)
        if request.pattern is not Pattern.COVERAGE
        else tuple(ZoneRevisit(z.name, int(z.risk or 1), 0, None, None) for z in patrol.site.watch),
    )


def format_kpis(k: Kpis) -> str:
    def hms(seconds: float) -> str:
        m, s = divmod(round(seconds), 60)
        h, m = divmod(m, 60)
        return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"

    lines = [
        f"{k.site}: {k.pattern} patrol, {k.drones} drone(s), {k.sorties} sortie(s) at {k.altitude_m:g} m, "
        f"{k.speed_m_s:g} m/s",
        f"  area {k.area_m2 / 1e6:.2f} km², lane spacing {k.lane_spacing_m:.1f} m, footprint {k.footprint_m:.1f} m",
        f"  path {k.path_length_m / 1000:.2f} km ({k.length_ratio:.2f}× the lower bound of "
        f"{k.lower_bound_m / 1000:.2f} km), seen {100 * k.seen_share:.1f} % of the area",
        f"  flight time {hms(k.flight_time_s)} (longest drone), {hms(k.total_flight_time_s)} all drones",
    ]
    if k.lap_time_s:
        lines.append(f"  one lap takes {hms(k.lap_time_s)}")
    for d in k.per_drone:
        delay = f", take off {hms(d.start_delay_s)} after the first" if d.start_delay_s >= 0.5 else ""
        lines.append(
            f"  drone {d.drone}: {d.sorties} sortie(s), {d.length_m / 1000:.2f} km, {hms(d.flight_time_s)}{delay}"
        )
    for r in k.revisits:
        if r.mean_interval_s is None and k.lap_time_s:
            lines.append(f"  watch zone {r.name!r} (risk {r.risk}): never in the camera's view on this lap")
        elif r.mean_interval_s is None:
            lines.append(f"  watch zone {r.name!r} (risk {r.risk}): seen once by the coverage, not revisited")
        else:
            lines.append(
                f"  watch zone {r.name!r} (risk {r.risk}): {r.visits_per_lap} pass(es) per lap, revisited every "
                f"{hms(r.mean_interval_s)} on average, at most {hms(r.max_interval_s)}"
            )
    return "\n".join(lines)

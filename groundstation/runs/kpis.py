"""What a patrol actually achieved, from its run folder: distance, time, ground seen, revisits, alerts.

The planner's KPIs (missions.planners.kpi) say what a plan should achieve; these say what the
flight did, from the recorded telemetry and camera footprints. Pure: :func:`compute_run_kpis`
reads nothing but the :class:`RunData` it is given (which already holds the evidence check).

A watch zone is *visited* by a frame when the frame's footprint covers at least 20 % of the
zone, or when at least half of the footprint lies in the zone. The first rule is the one that
matters for small zones (a quay, a ramp), which one frame sees whole; the second is for zones
bigger than anything a camera sees at once (an anchorage a kilometre across), which no frame
covers a fifth of, but which the camera is plainly watching when it looks mostly at them.
Frames that visit a zone less than ``visit_gap_s`` (60 s) apart belong to one visit; the
revisit interval is the time between the starts of consecutive visits.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from types import MappingProxyType

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from groundstation.runs.reader import RunData, TelemetryPoint
from groundstation.runs.vessels import AisKpis, ais_kpis
from missions.geo import haversine_m

VISIT_ZONE_SHARE = 0.2
VISIT_FOOTPRINT_SHARE = 0.5
VISIT_GAP_S = 60.0


@dataclass(frozen=True)
class VehicleKpis:
    vehicle: int  # from 0
    name: str
    distance_m: float  # flown in the air, point to point over the recorded telemetry
    flight_time_s: float


@dataclass(frozen=True)
class ZoneKpis:
    name: str
    risk: int | None
    area_m2: float
    seen_share: float  # of the zone's area, inside some frame's footprint
    visits: int
    mean_revisit_s: float | None  # between visit starts; None with fewer than two visits
    max_revisit_s: float | None
    alerts: int


@dataclass(frozen=True)
class EvidenceKpis:
    present: bool
    ok: bool  # chain intact and, when the run was closed, ending where it ended then
    records: int
    snapshots_verified: int
    verdict: str  # one line for a person


@dataclass(frozen=True)
class RunKpis:
    site: str
    started: str
    ended: str | None
    duration_s: float | None
    vehicles: tuple[VehicleKpis, ...]
    frames: int  # recorded (≤ 2 Hz per camera), with or without a footprint
    area_m2: float | None  # operating areas minus no-fly zones; None when the site has no operating area
    seen_area_m2: float  # of that area
    seen_share: float | None
    zones: tuple[ZoneKpis, ...]
    alerts: int
    alerts_per_zone: Mapping[str, int]
    alerts_per_class: Mapping[str, int]
    detections_per_class: Mapping[str, int]  # sightings in the recorded frames
    tracks_per_class: Mapping[str, int]  # distinct tracked objects
    evidence: EvidenceKpis
    warnings: tuple[str, ...]
    time_scale: float = 1.0  # the times above are simulated time, this many times the recorded clock's
    speed_factor: float | None = None  # a simulation's, up to which it ran
    unverified_alerts: int = 0  # distinct lines of alerts.jsonl that the verified evidence does not bear out
    ais: AisKpis | None = None  # vessel tracks by AIS status; None for a run without AIS

    @property
    def simulated_at(self) -> str | None:
        """How fast a simulated run went, in words; None for a real one."""
        if self.speed_factor is not None:
            return f"up to {self.speed_factor:g}× real time"
        return None if self.time_scale == 1.0 else f"{self.time_scale:g}× real time"

    def to_dict(self) -> dict:
        """Plain JSON-ready values (the counts are read-only mappings here)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(
            vehicles=[asdict(v) for v in self.vehicles],
            zones=[asdict(z) for z in self.zones],
            evidence=asdict(self.evidence),
            warnings=list(self.warnings),
        )
        if self.ais is None:
            del out["ais"]  # a run without AIS reads as it did before AIS
        else:
            out["ais"] = asdict(self.ais)
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in out.items()}


def seen_area_m(run: RunData) -> BaseGeometry:
    """The union of every recorded footprint, in the site's metres."""
    footprints = _footprints_m(run)[1]
    return shapely.union_all(footprints) if len(footprints) else shapely.Polygon()


def compute_run_kpis(run: RunData, visit_gap_s: float = VISIT_GAP_S) -> RunKpis:
    site = run.site
    times, footprints = _footprints_m(run)
    times = times * run.time_scale  # visits and revisits in the drones' own time
    seen = shapely.union_all(footprints) if len(footprints) else shapely.Polygon()
    area = site.free_space(0.0) if site.keep_in_m is not None else None
    seen_in_area = float(area.intersection(seen).area) if area is not None else float(seen.area)
    alerts = run.shown_alerts  # one per id, as the verified evidence says it where it can
    zone_alerts = Counter(a.zone for a in alerts)
    zones = []
    for zone in site.watch:
        shape = site.local(zone)
        visits = _visit_starts(times, footprints, shape, visit_gap_s)
        intervals = np.diff(visits) if len(visits) >= 2 else np.array([])
        zones.append(
            ZoneKpis(
                name=zone.name,
                risk=zone.risk,
                area_m2=float(shape.area),
                seen_share=_share(shape.intersection(seen).area, shape.area),
                visits=len(visits),
                mean_revisit_s=float(intervals.mean()) if len(intervals) else None,
                max_revisit_s=float(intervals.max()) if len(intervals) else None,
                alerts=zone_alerts.get(zone.name, 0),
            )
        )
    sightings: Counter[str] = Counter()
    first_class: dict[tuple[str, int], str] = {}
    for frame in run.detections:
        for d in frame:
            sightings[d.object_class.value] += 1
            if d.track_id is not None:
                first_class.setdefault((frame.source, d.track_id), d.object_class.value)
    return RunKpis(
        site=site.name,
        started=run.started,
        ended=run.ended,
        duration_s=None if (duration := _duration_s(run)) is None else duration * run.time_scale,
        vehicles=_vehicles(run),
        frames=len(run.frames),
        area_m2=float(area.area) if area is not None else None,
        seen_area_m2=seen_in_area,
        seen_share=_share(seen_in_area, area.area) if area is not None else None,
        zones=tuple(zones),
        alerts=len(alerts),
        alerts_per_zone=_frozen(zone_alerts),
        alerts_per_class=_frozen(Counter(a.object_class.value for a in alerts)),
        detections_per_class=_frozen(sightings),
        tracks_per_class=_frozen(Counter(first_class.values())),
        evidence=evidence_kpis(run),
        warnings=run.warnings,
        time_scale=run.time_scale,
        speed_factor=run.speed_factor,
        unverified_alerts=len(run.unverified_alerts),
        ais=ais_kpis(run),
    )


def _footprints_m(run: RunData) -> tuple[np.ndarray, np.ndarray]:
    """Frame times and footprints in metres, in time order, for the frames that have one."""
    kept = sorted((f for f in run.frames if f.footprint_deg is not None), key=lambda f: f.time_s)
    times = np.array([f.time_s for f in kept], dtype=float)
    if not kept:
        return times, np.array([], dtype=object)
    shapes = np.array([f.footprint_deg for f in kept], dtype=object)
    return times, run.site.frame.to_local(shapes)  # shapely transforms a whole array at once


def _visit_starts(times: np.ndarray, footprints: np.ndarray, zone: BaseGeometry, gap_s: float) -> list[float]:
    if not len(footprints) or zone.area <= 0:
        return []
    overlap = shapely.area(shapely.intersection(footprints, zone))
    visiting = (overlap >= VISIT_ZONE_SHARE * zone.area) | (overlap >= VISIT_FOOTPRINT_SHARE * shapely.area(footprints))
    visiting &= overlap > 0
    starts: list[float] = []
    last = -math.inf
    for t in times[visiting].tolist():
        if t - last > gap_s:
            starts.append(t)
        last = t
    return starts


def _vehicles(run: RunData) -> tuple[VehicleKpis, ...]:
    by_vehicle: dict[int, list[TelemetryPoint]] = {v.vehicle: [] for v in run.vehicles}
    for point in run.telemetry:
        by_vehicle.setdefault(point.vehicle, []).append(point)
    out = []
    for vehicle, points in sorted(by_vehicle.items()):
        points.sort(key=lambda p: p.time_s)
        distance_m = flight_s = 0.0
        for a, b in itertools.pairwise(points):
            if not (a.in_air and b.in_air):
                continue
            flight_s += max(b.time_s - a.time_s, 0.0)
            if a.has_position and b.has_position:
                distance_m += haversine_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg)
        out.append(VehicleKpis(vehicle, run.vehicle_label(vehicle), distance_m, flight_s * run.time_scale))
    return tuple(out)


def evidence_kpis(run: RunData) -> EvidenceKpis:
    """What the evidence of a run is worth: the station's log and each onboard unit's copy, in a verdict."""
    ground = _ground_evidence(run)
    if not run.onboard:
        return ground
    units = [_unit_evidence(run, unit) for unit in run.onboard]
    parts = ([] if ground.present and not ground.records and ground.ok else [f"station: {ground.verdict}"]) + [
        verdict for _, verdict in units
    ]
    ok = ground.ok or not ground.present
    ok = ok and all(unit_ok for unit_ok, _ in units)
    records = ground.records + sum(u.report.records for u in run.onboard)
    snapshots = ground.snapshots_verified + sum(u.report.snapshots_verified for u in run.onboard)
    summary = f"{'intact' if ok else 'NOT INTACT'}: " if len(parts) > 1 else ""
    return EvidenceKpis(True, ok, records, snapshots, summary + "; ".join(parts))


def _unit_evidence(run: RunData, unit) -> tuple[bool, str]:
    report = unit.report
    counted = f"{report.records} record(s), {report.snapshots_verified} snapshot(s) verified{_signed(report)}"
    if not report.ok:
        return False, f"{unit.name}: {_tampered(report)}"
    if unit.head_sha256 is None:
        return run.ended is None, f"{unit.name}: chain intact ({counted}); the unit never said where its log ended"
    if unit.tail_sha256 != unit.head_sha256 or report.records != unit.head_seq:
        return False, (
            f"{unit.name}: NOT THE ONBOARD CHAIN: the copy ({counted}) does not end at the unit's head "
            f"(record {unit.head_seq}): records missing, cut off, or added after"
        )
    return True, f"{unit.name}: intact, the same chain as onboard ({counted})"


def _tampered(report) -> str:
    if report.problem is not None and report.problem.name in ("TRUNCATED", "BAD_HEAD"):
        return f"TAMPERED: {report.reason}"
    where = (
        f"record {report.first_bad_seq} (line {report.first_bad})"
        if report.first_bad_seq
        else f"line {report.first_bad}"
    )
    return f"TAMPERED at {where}: {report.reason}"


def _signed(report) -> str:
    if not report.records:
        return ""
    if not report.signatures_checked:
        return ", signatures not checked"
    head = report.last_signed_head
    heads = f", head signed at record {head.seq}" if head else ", no signed head yet"
    return f", signed by key {', '.join(report.signers)}{heads}"


def _ground_evidence(run: RunData) -> EvidenceKpis:
    report = run.evidence
    if report is None:
        return EvidenceKpis(False, False, 0, 0, "no evidence log in this run")
    if not report.ok:
        return EvidenceKpis(True, False, report.records, 0, _tampered(report))
    counted = f"{report.records} record(s), {report.snapshots_verified} snapshot(s) verified{_signed(report)}"
    torn = "; a final record cut off by a crash is not counted" if report.torn_tail else ""
    kept = run.evidence_last_sha256
    if run.ended is None:
        verdict = (
            f"chain intact: {counted}{torn}; the run was not closed, so newest records cut off cannot be ruled out"
            f"{_stamped(run)}"
        )
        return EvidenceKpis(True, True, report.records, report.snapshots_verified, verdict)
    if kept != run.evidence_tail_sha256 and not (kept is None and report.records == 0):
        verdict = (
            f"NOT AS CLOSED: the chain is intact ({counted}) but does not end with the record run.json kept "
            "at the end of the run: records were cut off, or added after"
        )
        return EvidenceKpis(True, False, report.records, report.snapshots_verified, verdict)
    verdict = f"intact: {counted}, ending with the record kept at the end of the run{torn}{_stamped(run)}"
    return EvidenceKpis(True, True, report.records, report.snapshots_verified, verdict)


def _stamped(run: RunData) -> str:
    """Which signed heads the run's TSA gave no timestamp token for (it did not answer in time)."""
    if run.tsa is None:
        return ""
    if not run.heads_without_token:
        return f"; every signed head has a timestamp token from {run.tsa}"
    missing = ", ".join(map(str, run.heads_without_token))
    return f"; NO TIMESTAMP TOKEN for the head(s) signed at record {missing}: the TSA {run.tsa} did not answer"


def _duration_s(run: RunData) -> float | None:
    started = _parse_time(run.started)
    ended = _parse_time(run.ended) if run.ended else None
    if started is None:
        return None
    if ended is None:
        last = max([p.time_s for p in run.telemetry] + [f.time_s for f in run.frames], default=None)
        return None if last is None else max(last - started, 0.0)
    return max(ended - started, 0.0)


def _parse_time(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def _share(part: float, whole: float) -> float:
    return float(min(part / whole, 1.0)) if whole > 0 else 0.0


def _frozen(counts: Counter[str]) -> Mapping[str, int]:
    return MappingProxyType(dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))


def hms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def format_run_kpis(k: RunKpis) -> str:
    """The summary `borderwatch report` prints."""
    share = "no operating area" if k.seen_share is None else f"{100 * k.seen_share:.1f} % of the operating area"
    lines = [
        f"{k.site}: run started {k.started}, {'ended ' + k.ended if k.ended else 'not closed'} "
        f"({hms(k.duration_s)}), {k.frames} frame(s) recorded",
        f"  seen {k.seen_area_m2 / 1e6:.3f} km², {share}",
    ]
    if k.simulated_at is not None:
        lines.insert(1, f"  simulated at {k.simulated_at}: times are the drones' own")
    for v in k.vehicles:
        lines.append(f"  {v.name}: {v.distance_m / 1000:.2f} km flown in {hms(v.flight_time_s)}")
    for z in k.zones:
        revisit = (
            f"revisited every {hms(z.mean_revisit_s)} on average, at most {hms(z.max_revisit_s)}"
            if z.mean_revisit_s is not None
            else "not revisited"
        )
        lines.append(
            f"  watch zone {z.name!r}: {100 * z.seen_share:.0f} % seen, {z.visits} visit(s), {revisit}, "
            f"{z.alerts} alert(s)"
        )
    per_class = ", ".join(f"{n} {c}" for c, n in k.alerts_per_class.items()) or "none"
    unverified = f", {k.unverified_alerts} unverified in alerts.jsonl" if k.unverified_alerts else ""
    lines.append(f"  alerts: {k.alerts} ({per_class}){unverified}")
    if k.ais is not None:
        lines.append(f"  {k.ais.summary}")
    tracks = ", ".join(f"{n} {c}" for c, n in k.tracks_per_class.items()) or "none"
    lines.append(f"  tracked objects: {tracks}")
    lines.append(f"  evidence: {k.evidence.verdict}")
    return "\n".join(lines)

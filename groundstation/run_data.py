"""Reading a run folder back (see groundstation.runfolder for its layout): every record, checked, as frozen values.

A malformed line fails naming its file and line; a final line cut short by a crash is a warning.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import shapely

from groundstation.fleet.state import LandedState, vehicle_name
from groundstation.runfolder import (
    ALERTS,
    DETECTIONS,
    EVENTS,
    EVIDENCE,
    FORMAT,
    FRAMES,
    PLAN_NAME,
    PLANS,
    RUN_JSON,
    SITE_FILE,
    TELEMETRY,
)
from missions.errors import InputError
from missions.formats import read_site
from missions.formats.qgc_plan import read_plan
from missions.plan import MissionPlan
from missions.site import Site
from vision.alerts import Alert
from vision.camera import CameraPose, Intrinsics
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence import EvidenceRecord
from vision.evidence_verify import VerifyReport, read_records, verify


@dataclass(frozen=True)
class RunVehicle:
    vehicle: int  # from 0
    name: str
    url: str


@dataclass(frozen=True)
class RunPlan:
    vehicle: int  # from 0
    sortie: int  # from 1
    path: Path
    plan: MissionPlan


@dataclass(frozen=True)
class TelemetryPoint:
    """One line of telemetry.jsonl; unknown numbers are NaN, ``time_s`` is Unix time."""

    time_s: float
    vehicle: int
    lat_deg: float
    lon_deg: float
    abs_alt_m: float
    rel_alt_m: float
    heading_deg: float
    ground_speed_m_s: float
    battery_pct: float
    flight_mode: str
    armed: bool
    landed_state: LandedState
    mission_current: int
    mission_total: int

    @property
    def in_air(self) -> bool:
        if self.landed_state is LandedState.UNKNOWN:
            return self.armed
        return self.landed_state is not LandedState.ON_GROUND

    @property
    def has_position(self) -> bool:
        return math.isfinite(self.lat_deg) and math.isfinite(self.lon_deg)


@dataclass(frozen=True)
class RunEvent:
    time_s: float
    vehicle: int
    reason: str
    severity: str
    message: str


@dataclass(frozen=True)
class FrameRecord:
    """One recorded video frame: where the camera was and what it saw of the ground (lon/lat)."""

    time_s: float
    source: str
    vehicle: int | None
    frame_index: int
    pose: CameraPose | None
    footprint_deg: shapely.Polygon | None
    detections: int


@dataclass(frozen=True)
class RunData:
    """A run folder as read back: every record in file order, with what could not be read named in ``warnings``."""

    directory: Path
    site: Site
    started: str
    ended: str | None
    vehicles: tuple[RunVehicle, ...]
    camera: Intrinsics | None
    plans: tuple[RunPlan, ...]
    telemetry: tuple[TelemetryPoint, ...]
    events: tuple[RunEvent, ...]
    frames: tuple[FrameRecord, ...]
    detections: tuple[Detections, ...]
    alerts: tuple[Alert, ...]
    evidence: VerifyReport | None  # None when the run has no evidence log
    evidence_last_sha256: str | None  # as run.json kept it at close
    evidence_tail_sha256: str | None  # the last record's hash in the log as it is now
    time_scale: float = 1.0  # simulated seconds per recorded second (a simulator faster than real time)
    snapshots: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))  # alert_id → JPEG
    warnings: tuple[str, ...] = ()

    @property
    def evidence_dir(self) -> Path:
        return self.directory / EVIDENCE

    def vehicle_label(self, vehicle: int) -> str:
        named = next((v.name for v in self.vehicles if v.vehicle == vehicle), None)
        return named or vehicle_name(vehicle)


class _BadLine(ValueError):
    pass


def read_run(directory: str | os.PathLike[str]) -> RunData:
    """Read a run folder; InputError naming the file (and line) when it is not one or is damaged."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(str(directory), "no such run folder")
    document = _read_run_json(directory / RUN_JSON)
    site_path = directory / SITE_FILE
    if not site_path.is_file():
        raise InputError(str(site_path), "no such file: a run folder holds its site")
    site = read_site(site_path)
    warnings: list[str] = []
    evidence, recorded_tail, snapshots = _read_evidence(directory / EVIDENCE, warnings)
    return RunData(
        directory=directory,
        site=site,
        started=document["started"],
        ended=document.get("ended"),
        vehicles=_vehicles(directory / RUN_JSON, document),
        camera=_camera(directory / RUN_JSON, document.get("camera")),
        plans=_read_plans(directory / PLANS, warnings),
        telemetry=_read_lines(directory / TELEMETRY, _telemetry, warnings),
        events=_read_lines(directory / EVENTS, _event, warnings),
        frames=_read_lines(directory / FRAMES, _frame, warnings),
        detections=_read_lines(directory / DETECTIONS, _detections, warnings),
        alerts=_read_lines(directory / ALERTS, _alert, warnings),
        evidence=evidence,
        evidence_last_sha256=document.get("evidence_last_sha256"),
        evidence_tail_sha256=recorded_tail,
        time_scale=_time_scale(directory / RUN_JSON, document),
        snapshots=MappingProxyType(snapshots),
        warnings=tuple(warnings),
    )


def _read_run_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(str(path), "no such file: not a run folder (it has no run.json)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(str(path), f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise InputError(str(path), "not a JSON object")
    if document.get("format") != FORMAT:
        raise InputError(str(path), f"format is {document.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(document.get("started"), str):
        raise InputError(str(path), "'started' is missing or not a time")
    if document.get("ended") is not None and not isinstance(document["ended"], str):
        raise InputError(str(path), "'ended' is not a time")
    return document


def _time_scale(path: Path, document: Mapping[str, Any]) -> float:
    value = document.get("time_scale", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InputError(str(path), f"'time_scale' must be a positive number, not {value!r}")
    return float(value)


def _vehicles(path: Path, document: Mapping[str, Any]) -> tuple[RunVehicle, ...]:
    try:
        return tuple(
            RunVehicle(_int(v, "vehicle"), _str(v, "name"), _str(v, "url")) for v in document.get("vehicles") or ()
        )
    except (_BadLine, TypeError) as exc:
        raise InputError(str(path), f"vehicles: {exc}") from None


def _camera(path: Path, camera: Any) -> Intrinsics | None:
    if camera is None:
        return None
    try:
        return Intrinsics(_int(camera, "width_px"), _int(camera, "height_px"), _num(camera, "hfov_deg"))
    except (ValueError, TypeError) as exc:
        raise InputError(str(path), f"camera: {exc}") from None


def _read_plans(folder: Path, warnings: list[str]) -> tuple[RunPlan, ...]:
    if not folder.is_dir():
        return ()
    plans = []
    for path in sorted(folder.iterdir()):
        match = PLAN_NAME.fullmatch(path.name)
        if match is None:
            if not path.name.startswith("."):
                warnings.append(f"{path}: not a vehicle-N.plan or vehicle-N-sK.plan name; ignored")
            continue
        plans.append(RunPlan(int(match[1]) - 1, int(match[2] or 1), path, read_plan(path)))
    return tuple(sorted(plans, key=lambda p: (p.vehicle, p.sortie)))


def _read_evidence(folder: Path, warnings: list[str]) -> tuple[VerifyReport | None, str | None, dict[str, Path]]:
    if not (folder / "evidence.jsonl").is_file():
        warnings.append(f"{folder}: no evidence log")
        return None, None, {}
    report = verify(folder)
    tail = None
    snapshots: dict[str, Path] = {}
    for _, record in read_records(folder):
        if not isinstance(record, EvidenceRecord):
            continue
        tail = record.sha256
        alert = record.payload.get("alert")
        if record.snapshot and isinstance(alert, Mapping) and isinstance(alert.get("alert_id"), str):
            snapshots.setdefault(alert["alert_id"], folder / "snapshots" / record.snapshot)
    return report, tail, snapshots


def _read_lines(path: Path, parse: Callable[[dict[str, Any]], Any], warnings: list[str]) -> tuple:
    """Every line parsed; a final line cut short (no newline, not JSON) is a warning, any other bad line an error."""
    if not path.is_file():
        return ()
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, as every complete file does
    records = [_parse_line(path, number, raw, parse) for number, raw in enumerate(lines, 1) if raw.strip()]
    if tail.strip():
        try:
            records.append(_parse_line(path, len(lines) + 1, tail, parse))
        except InputError:
            warnings.append(f"{path}:{len(lines) + 1}: the last line was cut off mid-write (a crash?) and is ignored")
    return tuple(records)


def _parse_line(path: Path, number: int, raw: bytes, parse: Callable[[dict[str, Any]], Any]) -> Any:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{path}:{number}", "not a JSON record (cut short or overwritten?)") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}:{number}", "not a JSON object")
    try:
        return parse(obj)
    except KeyError as exc:
        raise InputError(f"{path}:{number}", f"missing field {exc}") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}:{number}", str(exc)) from None


def _num(obj: Mapping[str, Any], key: str) -> float:
    value = obj[key]
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadLine(f"{key} is not a number")
    return float(value)


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadLine(f"{key} is not an integer")
    return value


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise _BadLine(f"{key} is not a string")
    return value


def _bool(obj: Mapping[str, Any], key: str) -> bool:
    value = obj[key]
    if not isinstance(value, bool):
        raise _BadLine(f"{key} is not true or false")
    return value


def _telemetry(obj: dict[str, Any]) -> TelemetryPoint:
    return TelemetryPoint(
        time_s=_num(obj, "time_s"),
        vehicle=_int(obj, "vehicle"),
        lat_deg=_num(obj, "lat_deg"),
        lon_deg=_num(obj, "lon_deg"),
        abs_alt_m=_num(obj, "abs_alt_m"),
        rel_alt_m=_num(obj, "rel_alt_m"),
        heading_deg=_num(obj, "heading_deg"),
        ground_speed_m_s=_num(obj, "ground_speed_m_s"),
        battery_pct=_num(obj, "battery_pct"),
        flight_mode=_str(obj, "flight_mode"),
        armed=_bool(obj, "armed"),
        landed_state=LandedState(_str(obj, "landed_state")),
        mission_current=_int(obj, "mission_current"),
        mission_total=_int(obj, "mission_total"),
    )


def _event(obj: dict[str, Any]) -> RunEvent:
    return RunEvent(
        _num(obj, "time_s"), _int(obj, "vehicle"), _str(obj, "reason"), _str(obj, "severity"), _str(obj, "message")
    )


def _frame(obj: dict[str, Any]) -> FrameRecord:
    pose = obj["pose"]
    if pose is not None and not isinstance(pose, dict):
        raise _BadLine("pose is not an object")
    footprint = obj["footprint_deg"]
    polygon = None
    if footprint is not None:
        try:
            polygon = shapely.Polygon(footprint)
        except (ValueError, TypeError, shapely.errors.ShapelyError):
            polygon = None
        if polygon is None or len(footprint) < 4 or not polygon.is_valid:
            raise _BadLine("footprint_deg is not a polygon of [lon, lat] points")
    vehicle = obj["vehicle"]
    return FrameRecord(
        time_s=_num(obj, "time_s"),
        source=_str(obj, "source"),
        vehicle=None if vehicle is None else _int(obj, "vehicle"),
        frame_index=_int(obj, "frame_index"),
        pose=None if pose is None else CameraPose(**pose),
        footprint_deg=polygon,
        detections=_int(obj, "detections"),
    )


def _detections(obj: dict[str, Any]) -> Detections:
    items = obj["items"]
    if not isinstance(items, list):
        raise _BadLine("items is not a list")
    return Detections(
        _str(obj, "source"),
        _num(obj, "frame_time_s"),
        _int(obj, "frame_index"),
        tuple(_detection(item) for item in items),
    )


def _detection(item: Any) -> Detection:
    if not isinstance(item, dict):
        raise _BadLine("a detection is not an object")
    box = item["box_px"]
    if not isinstance(box, list) or len(box) != 4:
        raise _BadLine("box_px is not four numbers")
    track = item["track_id"]
    lat, lon = item["lat_deg"], item["lon_deg"]
    return Detection(
        object_class=ObjectClass(_str(item, "class")),
        confidence=_num(item, "confidence"),
        box_px=tuple(float(v) for v in box),  # type: ignore[arg-type]
        track_id=None if track is None else _int(item, "track_id"),
        lat_deg=None if lat is None else _num(item, "lat_deg"),
        lon_deg=None if lon is None else _num(item, "lon_deg"),
    )


def _alert(obj: dict[str, Any]) -> Alert:
    return Alert.from_json_dict(obj)

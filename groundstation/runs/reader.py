"""Reading a run folder back (see groundstation.runs.recorder for its layout): every record, checked, as frozen values.

A malformed line fails naming its file and line; a final line cut short by a crash is a warning.

Alerts have one source of truth, the evidence: an alert is as its newest verified evidence record
says it (:attr:`RunData.verified_alerts`), and each line of alerts.jsonl, which nothing signs, is
checked against that record (:attr:`RunData.alert_checks`). A record is verified when it lies before
its log's first bad record and its signature checks out against the station's trust store.
"""

from __future__ import annotations

import enum
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import shapely

from groundstation.fleet.state import LandedState, vehicle_name
from groundstation.runs.recorder import (
    ALERTS,
    DETECTIONS,
    EVENTS,
    EVIDENCE,
    FORMAT,
    FRAMES,
    ONBOARD,
    PLAN_NAME,
    PLANS,
    RUN_JSON,
    SITE_FILE,
    TELEMETRY,
)
from missions.errors import InputError
from missions.formats import read_site_unvalidated
from missions.formats.qgc_plan import read_plan
from missions.plan import MissionPlan
from missions.site import Site
from vision.alerts import Alert
from vision.camera import CameraPose, Intrinsics
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence import EvidenceRecord, SignedHead
from vision.evidence_verify import VerifyReport, read_heads, read_records, verify
from vision.signing import TrustStore, default_trust_dir
from vision.stamping import read_stamps, unstamped_heads


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


class AlertStatus(enum.Enum):
    """How a line of alerts.jsonl stands against the evidence."""

    VERIFIED = "verified"
    DIFFERS = "differs from its evidence record"
    NO_RECORD = "no evidence record"
    LOG_NOT_VERIFIED = "its evidence log does not verify"


@dataclass(frozen=True)
class EvidenceAlert:
    """An alert as an evidence record holds it (``payload["alert"]``), and whether that record verifies."""

    alert: Alert
    log: str  # the log's folder in the run: "evidence", "onboard/unit-1"
    seq: int
    time: str  # the record's, ISO 8601 UTC
    signer: str | None  # key id
    snapshot: Path | None
    verified: bool  # before its log's first bad record, and signed by a trusted key whose signature matches
    why_not: str = ""  # when not verified, what is wrong, in words

    @property
    def where(self) -> str:
        return f"{self.log} record {self.seq}"

    @property
    def signed_by(self) -> str:
        """Who signed it, for a person (of a verified record)."""
        return f"signed by key {self.signer}: signature verified ({self.where})"


@dataclass(frozen=True)
class AlertCheck:
    """One line of alerts.jsonl checked against the verified evidence."""

    line: int | None  # in alerts.jsonl; None when the RunData was not read from a folder
    alert: Alert  # as the line says it
    status: AlertStatus
    reason: str  # for a person: why it is verified, or why not
    fields: tuple[str, ...] = ()  # DIFFERS: the alert's fields that differ from the record
    record: EvidenceAlert | None = None  # the evidence record it was checked against

    @property
    def verified(self) -> bool:
        return self.status is AlertStatus.VERIFIED

    @property
    def source(self) -> str:
        return "alerts.jsonl" if self.line is None else f"alerts.jsonl line {self.line}"

    @property
    def unverified_line(self) -> str:
        return f"UNVERIFIED ({self.source}): {self.reason}"


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
    speed_factor: float | None = None  # how much faster than real time a simulation ran, at most
    snapshots: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))  # alert_id → JPEG
    warnings: tuple[str, ...] = ()
    onboard: tuple[UnitEvidence, ...] = ()  # each onboard unit's evidence, as the station received it
    alert_lines: tuple[int, ...] = ()  # the alerts.jsonl line of each of ``alerts``
    evidence_alerts: tuple[EvidenceAlert, ...] = ()  # every alert record of every log, verified or not
    tsa: str | None = None  # the TSA the run asked for timestamp tokens, if any
    heads_without_token: tuple[int, ...] = ()  # with a TSA: the signed heads (by record) it gave no token for

    @property
    def evidence_dir(self) -> Path:
        return self.directory / EVIDENCE

    @cached_property
    def verified_alerts(self) -> Mapping[str, EvidenceAlert]:
        """alert_id → the newest verified evidence record that holds the alert, from any log of the run."""
        newest: dict[str, EvidenceAlert] = {}
        for record in self.evidence_alerts:
            kept = newest.get(record.alert.alert_id)
            if record.verified and (kept is None or record.time >= kept.time):
                newest[record.alert.alert_id] = record
        return MappingProxyType(newest)

    @cached_property
    def alert_checks(self) -> tuple[AlertCheck, ...]:
        """Each line of alerts.jsonl, in file order, against the verified evidence."""
        unverified = {r.alert.alert_id: r for r in self.evidence_alerts if not r.verified}
        lines = self.alert_lines if len(self.alert_lines) == len(self.alerts) else (None,) * len(self.alerts)
        return tuple(
            _check(line, alert, self.verified_alerts.get(alert.alert_id), unverified.get(alert.alert_id))
            for line, alert in zip(lines, self.alerts, strict=True)
        )

    @cached_property
    def unverified_alerts(self) -> tuple[AlertCheck, ...]:
        """The lines of alerts.jsonl the verified evidence does not bear out; a repeated line once."""
        distinct: dict[tuple[Alert, AlertStatus], AlertCheck] = {}
        for check in self.alert_checks:
            if not check.verified:
                distinct.setdefault((check.alert, check.status), check)
        return tuple(distinct.values())

    @cached_property
    def shown_alerts(self) -> tuple[Alert, ...]:
        """One alert per id, in time order: as its verified evidence record says it, else (unverified) as the
        first line of alerts.jsonl that names it."""
        shown = {alert_id: record.alert for alert_id, record in self.verified_alerts.items()}
        for check in self.alert_checks:
            shown.setdefault(check.alert.alert_id, check.alert)
        return tuple(sorted(shown.values(), key=lambda a: (a.time_s, a.alert_id)))

    def vehicle_label(self, vehicle: int) -> str:
        named = next((v.name for v in self.vehicles if v.vehicle == vehicle), None)
        return named or vehicle_name(vehicle)


def _check(line: int | None, alert: Alert, record: EvidenceAlert | None, bad: EvidenceAlert | None) -> AlertCheck:
    if record is not None:
        said, kept = alert.to_json_dict(), record.alert.to_json_dict()
        differ = tuple(k for k in kept if said.get(k) != kept[k])
        if not differ:
            reason = record.signed_by
            return AlertCheck(line, alert, AlertStatus.VERIFIED, reason, record=record)
        reason = f"differs from its evidence record ({record.where}) in {', '.join(differ)}"
        return AlertCheck(line, alert, AlertStatus.DIFFERS, reason, differ, record)
    if bad is not None:
        reason = f"its evidence record ({bad.where}) is not verified: {bad.why_not}"
        return AlertCheck(line, alert, AlertStatus.LOG_NOT_VERIFIED, reason, record=bad)
    return AlertCheck(line, alert, AlertStatus.NO_RECORD, AlertStatus.NO_RECORD.value)


@dataclass(frozen=True)
class UnitEvidence:
    """The station's copy of an onboard unit's evidence log, and where the unit's own log ended."""

    name: str  # unit-N
    directory: Path
    report: VerifyReport
    tail_sha256: str | None  # the copy's last record, as it is now
    head_seq: int | None  # as the unit last said (run.json), None when it never did
    head_sha256: str | None


class _BadLine(ValueError):
    pass


def read_run(directory: str | os.PathLike[str], trust: TrustStore | None = None) -> RunData:
    """Read a run folder; InputError naming the file (and line) when it is not one or is damaged.

    The evidence is verified against ``trust`` (default: this station's trust store)."""
    directory = Path(directory)
    if trust is None:
        trust = TrustStore.load(default_trust_dir())
    if not directory.is_dir():
        raise InputError(str(directory), "no such run folder")
    document = _read_run_json(directory / RUN_JSON)
    site_path = directory / SITE_FILE
    if not site_path.is_file():
        raise InputError(str(site_path), "no such file: a run folder holds its site")
    site = read_site_unvalidated(site_path)
    warnings: list[str] = []
    evidence_alerts: list[EvidenceAlert] = []
    evidence, recorded_tail, snapshots = _read_evidence(
        directory / EVIDENCE, EVIDENCE, warnings, trust, evidence_alerts
    )
    onboard = _read_onboard(directory, document, snapshots, trust, evidence_alerts)
    alerts = _read_numbered(directory / ALERTS, _alert, warnings)
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
        alerts=tuple(alert for _, alert in alerts),
        evidence=evidence,
        evidence_last_sha256=document.get("evidence_last_sha256"),
        evidence_tail_sha256=recorded_tail,
        time_scale=_time_scale(directory / RUN_JSON, document),
        speed_factor=_speed_factor(directory / RUN_JSON, document),
        snapshots=MappingProxyType(snapshots),
        warnings=tuple(warnings),
        onboard=onboard,
        alert_lines=tuple(line for line, _ in alerts),
        evidence_alerts=tuple(evidence_alerts),
        tsa=document["tsa"] if isinstance(document.get("tsa"), str) else None,
        heads_without_token=_heads_without_token(directory / EVIDENCE) if isinstance(document.get("tsa"), str) else (),
    )


def _heads_without_token(folder: Path) -> tuple[int, ...]:
    heads = [h for h in read_heads(folder) if isinstance(h, SignedHead)]
    return tuple(unstamped_heads(heads, read_stamps(folder)))


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


def _speed_factor(path: Path, document: Mapping[str, Any]) -> float | None:
    value = document.get("speed_factor")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InputError(str(path), f"'speed_factor' must be a positive number, not {value!r}")
    return float(value)


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


def _read_evidence(
    folder: Path, log: str, warnings: list[str], trust: TrustStore, alerts: list[EvidenceAlert]
) -> tuple[VerifyReport | None, str | None, dict[str, Path]]:
    """The log's verdict, its last record's hash and its snapshots by alert id; its alert records (named
    as from ``log``) go to ``alerts``."""
    if not (folder / "evidence.jsonl").is_file():
        warnings.append(f"{folder}: no evidence log")
        return None, None, {}
    report = verify(folder, trust)
    # verify stops at the first bad line, so the signatures before it are checked here unless the whole log passed.
    good_before = report.records + 1 if report.ok else report.first_bad or 0
    tail = None
    snapshots: dict[str, Path] = {}
    for line, record in read_records(folder):
        if not isinstance(record, EvidenceRecord):
            continue
        tail = record.sha256
        held = record.payload.get("alert")
        snapshot = folder / "snapshots" / record.snapshot if record.snapshot else None
        if snapshot is not None and isinstance(held, Mapping) and isinstance(held.get("alert_id"), str):
            snapshots.setdefault(held["alert_id"], snapshot)
        alert = _evidence_alert(held)
        if alert is None:
            continue
        if line >= good_before:
            where = f" from line {report.first_bad}" if report.first_bad else ""
            why = f"the log does not verify{where}: {report.reason}"
        else:
            why = "" if report.ok else _signature_problem(record, trust) or ""
        alerts.append(EvidenceAlert(alert, log, record.seq, record.time, record.signer, snapshot, not why, why))
    return report, tail, snapshots


def _evidence_alert(obj: Any) -> Alert | None:
    """The alert a record holds; None when it holds none, or not one that can be read."""
    if not isinstance(obj, Mapping):
        return None
    try:
        return Alert.from_json_dict(obj)
    except (KeyError, ValueError, TypeError):
        return None


def _signature_problem(record: EvidenceRecord, trust: TrustStore) -> str | None:
    if record.signer is None or record.signature is None:
        return f"record {record.seq} is not signed"
    why = trust.verify(record.signer, record.sha256.encode("ascii"), record.signature)
    return None if why is None else f"record {record.seq}: {why}"


def _read_onboard(
    directory: Path, document: Mapping[str, Any], snapshots: dict[str, Path], trust, alerts: list[EvidenceAlert]
) -> tuple:
    heads = document.get("onboard") if isinstance(document.get("onboard"), Mapping) else {}
    found = []
    for folder in sorted((directory / ONBOARD).glob("unit-*"), key=lambda p: (len(p.name), p.name)):
        if not (folder / "evidence.jsonl").is_file():
            continue
        report, tail, unit_snapshots = _read_evidence(folder, f"{ONBOARD}/{folder.name}", [], trust, alerts)
        for alert_id, path in unit_snapshots.items():
            snapshots.setdefault(alert_id, path)
        head = heads.get(folder.name) if isinstance(heads.get(folder.name), Mapping) else {}
        seq, sha = head.get("head_seq"), head.get("head_sha256")
        found.append(UnitEvidence(folder.name, folder, report, tail, seq if isinstance(seq, int) else None,
                                  sha if isinstance(sha, str) else None))  # fmt: skip
    return tuple(found)


def _read_lines(path: Path, parse: Callable[[dict[str, Any]], Any], warnings: list[str]) -> tuple:
    return tuple(record for _, record in _read_numbered(path, parse, warnings))


def _read_numbered(path: Path, parse: Callable[[dict[str, Any]], Any], warnings: list[str]) -> list[tuple[int, Any]]:
    """(line number, record) for every line; a final line cut short (no newline, not JSON) is a warning, any
    other bad line an error."""
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, as every complete file does
    records = [(n, _parse_line(path, n, raw, parse)) for n, raw in enumerate(lines, 1) if raw.strip()]
    if tail.strip():
        try:
            records.append((len(lines) + 1, _parse_line(path, len(lines) + 1, tail, parse)))
        except InputError:
            warnings.append(f"{path}:{len(lines) + 1}: the last line was cut off mid-write (a crash?) and is ignored")
    return records


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


def detections_from_json(obj: Any) -> Detections:
    """A frame's detections from their JSON (a detections.jsonl line, an onboard unit's message);
    ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("detections: not a JSON object")
    try:
        return _detections(obj)
    except KeyError as exc:
        raise ValueError(f"detections: missing field {exc}") from None
    except TypeError as exc:
        raise ValueError(f"detections: {exc}") from None


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
        mmsi=None if item.get("mmsi") is None else _int(item, "mmsi"),
        vessel_name=None if item.get("vessel_name") is None else _str(item, "vessel_name"),
    )


def _alert(obj: dict[str, Any]) -> Alert:
    return Alert.from_json_dict(obj)

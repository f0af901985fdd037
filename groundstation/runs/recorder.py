"""A patrol's run folder: everything the ground station saw, written as it happens, read back for reports.

Layout (format tag ``borderwatch-run/1``)::

    RUN_DIR/run.json          site_name, started, ended (null while running), vehicles, camera,
                              evidence_last_sha256 (at close), time_scale (simulated s per second of
                              the recorded clock), speed_factor (a simulation's, up to which it ran)
    RUN_DIR/site.geojson      the site
    RUN_DIR/plans/            vehicle-N.plan, vehicle-N-sK.plan: the QGroundControl plans flown (N from 1)
    RUN_DIR/telemetry.jsonl   one vehicle snapshot per line, ≤ 2 Hz per vehicle plus every change of
                              flight mode, armed or landed state
    RUN_DIR/events.jsonl      the fleet's events (status texts, failsafes, mission progress)
    RUN_DIR/frames.jsonl      ≤ 2 Hz per video source: camera pose and ground footprint
    RUN_DIR/detections.jsonl  frames with detections, ≤ 2 Hz per source, plus every frame with a new track
    RUN_DIR/alerts.jsonl      one alert per line
    RUN_DIR/evidence/         the hash-chained evidence log (vision.evidence)
    RUN_DIR/onboard/unit-N/   each onboard unit's evidence, received over the bus: a copy of its log, the
                              same chain; run.json's ``onboard`` says where each unit's own log ended

Each line is one ``write`` on an ``O_APPEND`` descriptor, so nothing already written is ever
lost and a crash leaves at most a final line cut short; :func:`groundstation.runs.reader.read_run` reports that line as
a warning and fails, naming file and line, on anything else it cannot read.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import shapely

from groundstation.fleet.state import FleetEvent, LandedState, VehicleState
from missions.errors import UserError
from missions.formats.geojson import write_geojson
from missions.formats.qgc_plan import write_plan
from missions.plan import MissionPlan
from missions.site import Site
from vision.alerts import Alert
from vision.camera import CameraPose, Intrinsics
from vision.detections import Detections
from vision.evidence import EvidenceLog
from vision.footprint import ground_footprint
from vision.pipeline import FrameResult
from vision.signing import Signer, station_key
from vision.stamping import HeadStamper

FORMAT = "borderwatch-run/1"
RUN_JSON = "run.json"
SITE_FILE = "site.geojson"
PLANS = "plans"
TELEMETRY = "telemetry.jsonl"
EVENTS = "events.jsonl"
FRAMES = "frames.jsonl"
DETECTIONS = "detections.jsonl"
ALERTS = "alerts.jsonl"
EVIDENCE = "evidence"
ONBOARD = "onboard"

TELEMETRY_PERIOD_S = 0.5
FRAME_PERIOD_S = 0.5
# Samples that arrive a hair early still count as due: 10 Hz telemetry must thin to 2 Hz, not to 1.7 Hz.
_EARLY_S = 0.01
# Footprints are stored to ~1 cm and simplified to half a metre: a nadir view is 4 corners, not 64 samples.
_FOOTPRINT_TOLERANCE_M = 0.5
_DEG_DIGITS = 7
PLAN_NAME = re.compile(r"vehicle-(\d+)(?:-s(\d+))?\.plan")

log = logging.getLogger(__name__)


def iso_utc(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_run_directory(parent: str | os.PathLike[str], site_name: str, time_s: float | None = None) -> Path:
    """A folder name under `parent` that does not exist yet: ``<UTC time>-<site>``."""
    stamp = datetime.fromtimestamp(time.time() if time_s is None else time_s, UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", site_name).strip("-").lower() or "run"
    base = Path(parent) / f"{stamp}-{slug}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def plan_file_name(vehicle: int, sortie: int = 1) -> str:
    """``vehicle-N.plan`` for a vehicle's first sortie, ``vehicle-N-sK.plan`` for the K-th; N counts from 1."""
    return f"vehicle-{vehicle + 1}.plan" if sortie == 1 else f"vehicle-{vehicle + 1}-s{sortie}.plan"


def _write_json_atomically(path: Path, document: Mapping[str, Any]) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", encoding="utf-8") as file:
        file.write(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def _due(now: float, last: float | None, period_s: float) -> bool:
    """Whether a sample at `now` is kept when the last kept one was at `last`; a clock that went back starts over."""
    return last is None or now < last or now - last >= period_s - _EARLY_S


def _finite(value: float) -> float | None:
    """JSON has no NaN: an unknown number is written as null."""
    return float(value) if math.isfinite(value) else None


class _Lines:
    """A JSON-lines file opened for appending; each line goes to the OS in one write as it is made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, obj: Mapping[str, Any], sync: bool = False) -> None:
        view = memoryview((json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode())
        while view:
            view = view[os.write(self._fd, view) :]
        if sync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


class RunRecorder:
    """Writes a run folder while a patrol flies. Every method may be called from any thread.

    It is an alert sink (``emit``) and a detection sink (``emit_detections``) for a vision
    pipeline, whose evidence log should be ``recorder.evidence``; the fleet controller calls
    ``record_state`` and ``record_event``; the vision worker calls ``record_frame``.
    After ``close`` further records are dropped (a worker may still be finishing a frame).
    """

    def __init__(
        self,
        directory: Path,
        site: Site,
        intrinsics: Intrinsics,
        evidence: EvidenceLog,
        clock: Callable[[], float],
        run_document: dict[str, Any],
    ) -> None:
        self.directory = directory
        self.site = site
        self.intrinsics = intrinsics
        self.evidence = evidence
        self._clock = clock
        self._document = run_document
        self._lock = threading.Lock()
        self._files = {name: _Lines(directory / name) for name in (TELEMETRY, EVENTS, FRAMES, DETECTIONS, ALERTS)}
        self._last_state: dict[int, tuple[float, tuple[str, bool, LandedState]]] = {}
        self._last_frame_s: dict[str, float] = {}
        self._last_detections: dict[str, tuple[float, int]] = {}
        self._tracks_seen: dict[str, set[int]] = {}
        self._closed = False
        self.stamper: HeadStamper | None = None  # a TSA's tokens for the evidence's signed heads

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        site: Site,
        vehicles: Sequence[tuple[str, str]],
        intrinsics: Intrinsics | None = None,
        *,
        clock: Callable[[], float] = time.time,
        time_scale: float = 1.0,
        speed_factor: float | None = None,
        signer: Signer | None = None,
        tsa_url: str | None = None,
    ) -> RunRecorder:
        """Start a run in a new (or empty) folder; `vehicles` are (name, url) in fleet order.

        `time_scale`: simulated seconds per second of the clock, for a simulator run faster than
        real time recorded on a wall clock; the KPIs then give flight times and revisits in the
        drones' own time. A simulation recorded on its own clock (the demo) keeps 1 and says its
        `speed_factor`, for the report to tell. The evidence is signed by `signer`, else by this
        station's key (`vision.signing.station_key`, made on first use); with `tsa_url` each signed
        head is also timestamped by that TSA (`vision.stamping`).
        """
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        if speed_factor is not None and not speed_factor > 0:
            raise ValueError(f"speed_factor must be positive, not {speed_factor}")
        directory = Path(directory)
        if (directory / RUN_JSON).exists():
            raise UserError(f"{directory}: already holds a run; record into a new folder")
        (directory / PLANS).mkdir(parents=True, exist_ok=True)
        write_geojson(site, directory / SITE_FILE)
        document: dict[str, Any] = {
            "format": FORMAT,
            "site_name": site.name,
            "started": iso_utc(clock()),
            "ended": None,
            "vehicles": [{"vehicle": i, "name": name, "url": url} for i, (name, url) in enumerate(vehicles)],
            "camera": None
            if intrinsics is None
            else {"hfov_deg": intrinsics.hfov_deg, "width_px": intrinsics.width_px, "height_px": intrinsics.height_px},
            "evidence_last_sha256": None,
            "time_scale": float(time_scale),
            **({} if speed_factor is None else {"speed_factor": float(speed_factor)}),
            **({} if tsa_url is None else {"tsa": tsa_url}),
        }
        _write_json_atomically(directory / RUN_JSON, document)
        evidence = EvidenceLog.open(directory / EVIDENCE, signer=signer or station_key(say=log.warning))
        recorder = cls(directory, site, intrinsics or Intrinsics(), evidence, clock, document)
        if tsa_url is not None:
            recorder.stamper = evidence.on_head = HeadStamper(directory / EVIDENCE, tsa_url)
        return recorder

    def add_plan(self, vehicle: int, plan: MissionPlan, sortie: int = 1) -> Path:
        """Keep the plan a vehicle (from 0) is about to fly; a re-upload of the same sortie replaces it."""
        if vehicle < 0 or sortie < 1:
            raise ValueError(f"vehicle must be >= 0 and sortie >= 1, got {vehicle} and {sortie}")
        path = self.directory / PLANS / plan_file_name(vehicle, sortie)
        temp = path.with_name(f".{path.name}.tmp")
        write_plan(plan, temp)
        os.replace(temp, path)
        return path

    def record_state(self, state: VehicleState) -> None:
        now = self._clock()
        key = (state.flight_mode, state.armed, state.landed_state)
        with self._lock:
            last = self._last_state.get(state.vehicle)
            if last is not None and last[1] == key and not _due(now, last[0], TELEMETRY_PERIOD_S):
                return
            self._last_state[state.vehicle] = (now, key)
            self._write(
                TELEMETRY,
                {
                    "time_s": now,
                    "vehicle": state.vehicle,
                    "lat_deg": _finite(state.lat_deg),
                    "lon_deg": _finite(state.lon_deg),
                    "abs_alt_m": _finite(state.abs_alt_m),
                    "rel_alt_m": _finite(state.rel_alt_m),
                    "heading_deg": _finite(state.heading_deg),
                    "ground_speed_m_s": _finite(state.ground_speed_m_s),
                    "battery_pct": _finite(state.battery_pct),
                    "flight_mode": state.flight_mode,
                    "armed": state.armed,
                    "landed_state": state.landed_state.value,
                    "mission_current": state.mission_current,
                    "mission_total": state.mission_total,
                },
            )

    def record_event(self, event: FleetEvent) -> None:
        line = {
            "time_s": self._clock(),
            "vehicle": event.vehicle,
            "reason": str(event.reason),
            "severity": event.severity.name.lower(),
            "message": event.message,
        }
        with self._lock:
            self._write(EVENTS, line)

    def record_frame(self, vehicle: int | None, result: FrameResult) -> None:
        """A processed video frame: its pose and what the camera saw of the ground, at most twice a second."""
        self.record_pose(vehicle, result.detections, result.pose)
        self.emit_detections(result.detections)

    def record_pose(self, vehicle: int | None, detections: Detections, pose: CameraPose | None) -> None:
        """The pose of a frame processed elsewhere (an onboard unit's), with what its camera saw."""
        source, time_s = detections.source, detections.frame_time_s
        with self._lock:
            last = self._last_frame_s.get(source)
            keep = _due(time_s, last, FRAME_PERIOD_S)
            if keep:
                self._last_frame_s[source] = time_s
        if keep:
            footprint = None if pose is None else self._footprint_deg(pose)
            line = {
                "time_s": time_s,
                "source": source,
                "vehicle": vehicle,
                "frame_index": detections.frame_index,
                "pose": None if pose is None else asdict(pose),
                "footprint_deg": footprint,
                "detections": len(detections),
            }
            with self._lock:
                self._write(FRAMES, line)

    def emit_detections(self, detections: Detections) -> None:
        """A frame's detections, when it has any; called twice for one frame (sink and record_frame) it is kept once."""
        if not len(detections):
            return
        source, time_s = detections.source, detections.frame_time_s
        with self._lock:
            seen = self._tracks_seen.setdefault(source, set())
            new_track = any(d.track_id is not None and d.track_id not in seen for d in detections)
            last = self._last_detections.get(source)
            if last is not None and last[1] == detections.frame_index and last[0] == time_s:
                return
            if last is not None and not new_track and not _due(time_s, last[0], FRAME_PERIOD_S):
                return
            seen.update(d.track_id for d in detections if d.track_id is not None)
            self._last_detections[source] = (time_s, detections.frame_index)
            self._write(DETECTIONS, detections.to_json_dict())

    def emit(self, alert: Alert) -> None:
        with self._lock:
            # Alerts are rare and are what the run is for: on the disk, not only in the OS, before we return.
            self._write(ALERTS, alert.to_json_dict(), sync=True)

    @property
    def onboard_dir(self) -> Path:
        """Where the units' evidence copies go (the station's receiver writes them)."""
        return self.directory / ONBOARD

    def note_onboard_head(self, unit: int, head_seq: int, head_sha256: str) -> None:
        """Where unit ``unit``'s own evidence log ended, as it said: kept in run.json at close,
        so a copy cut short or added to afterwards shows."""
        with self._lock:
            heads = self._document.setdefault("onboard", {})
            heads[f"unit-{unit}"] = {"head_seq": head_seq, "head_sha256": head_sha256}

    def close(self) -> None:
        """Close the files and the evidence log; run.json gets the end time and the evidence chain's last hash."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for lines in self._files.values():
                lines.close()
            self.evidence.close()
            if self.stamper is not None:
                self.stamper.close()  # the head signed at close among what it waits for
            self._document["ended"] = iso_utc(self._clock())
            self._document["evidence_last_sha256"] = self.evidence.last_sha256 if self.evidence.last_seq else None
            _write_json_atomically(self.directory / RUN_JSON, self._document)

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, name: str, line: Mapping[str, Any], sync: bool = False) -> None:
        if self._closed:
            log.debug("%s: run closed, %s line dropped", self.directory, name)
            return
        self._files[name].write(line, sync)

    def _footprint_deg(self, pose: CameraPose) -> list[list[float]] | None:
        polygon = ground_footprint(pose, self.intrinsics, self.site.frame)
        if polygon.is_empty:
            return None
        simplified = polygon.simplify(_FOOTPRINT_TOLERANCE_M)
        coords = shapely.get_coordinates(self.site.frame.to_geo(simplified.exterior))
        return [[round(float(lon), _DEG_DIGITS), round(float(lat), _DEG_DIGITS)] for lon, lat in coords]

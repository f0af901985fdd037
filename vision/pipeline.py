"""Frames in, located and tracked detections, alerts and evidence out.

    Source → Detector → Geolocator → Tracker → TrackSmoother → AlertEngine → sinks, evidence

Geolocation comes before tracking, against the order one might draw it: a drone that turns
sweeps every object across the image, but not across the ground, so the tracker associates
in site metres whenever the camera pose is known and only falls back to pixels without one.

Each stage is a small object with one method; the pipeline owns no threads. `run` reads a
source until it ends or is stopped and hands every `FrameResult` (a frozen snapshot) to a
callback — the CLI prints it, the GUI posts it to its own thread, a test collects it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from vision.alerts import Alert, AlertEngine
from vision.camera import CameraPose
from vision.detections import Detection, Detections
from vision.evidence import EvidenceLog
from vision.frames import Frame
from vision.geolocate import Geolocator, TrackSmoother
from vision.sinks import AlertSink


class Detector(Protocol):
    def detect(self, image_bgr: np.ndarray) -> tuple[Detection, ...]: ...


class PoseSource(Protocol):
    def pose_at(self, time_s: float) -> CameraPose | None: ...


class TrackerStage(Protocol):
    def update(self, detections: Detections) -> Detections: ...


class DetectionSink(Protocol):
    def emit_detections(self, detections: Detections) -> None: ...


@dataclass(frozen=True)
class FrameResult:
    """What the pipeline made of one frame."""

    frame_index: int
    frame_time_s: float
    detections: Detections
    alerts: tuple[Alert, ...]
    pose: CameraPose | None
    detect_s: float
    total_s: float
    done_s: float  # Unix time the result was ready: done_s − frame_time_s is capture-to-result latency

    @property
    def latency_s(self) -> float:
        return self.done_s - self.frame_time_s


@dataclass
class RunStats:
    frames: int = 0
    detections: int = 0
    alerts: int = 0
    evidence_records: int = 0
    latencies_s: list[float] = field(default_factory=list)
    detect_s: list[float] = field(default_factory=list)

    def percentile_ms(self, values: list[float], q: float) -> float:
        return float(np.percentile(values, q) * 1000.0) if values else float("nan")


def annotate(image: np.ndarray, detections: Detections) -> np.ndarray:
    """A copy of the frame with each detection boxed and labelled: class, track id, confidence."""
    canvas = np.array(image, copy=True)
    for d in detections:
        colour = _CLASS_BGR.get(d.object_class.value, (200, 200, 200))
        x1, y1, x2, y2 = (round(v) for v in d.box_px)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        label = f"{d.object_class.value}{'' if d.track_id is None else f' #{d.track_id}'} {d.confidence:.2f}"
        cv2.putText(canvas, label, (x1, max(12, y1 - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return canvas


_CLASS_BGR = {"vessel": (0, 220, 255), "vehicle": (255, 120, 0), "person": (255, 0, 255), "other": (200, 200, 200)}


def snapshot_jpeg(image: np.ndarray, box_px: tuple[float, float, float, float] | None, label: str) -> bytes:
    """The frame with the alerting object boxed and labelled, as JPEG bytes for the evidence log."""
    canvas = np.array(image, copy=True)
    if box_px is not None:
        x1, y1, x2, y2 = (round(v) for v in box_px)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 0, 255), 2)
        cv2.putText(canvas, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1, cv2.LINE_AA)
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("could not encode the snapshot as JPEG")
    return data.tobytes()


class Pipeline:
    """One video stream's detector, geolocation, tracking and alerting."""

    def __init__(
        self,
        detector: Detector,
        *,
        source_name: str = "camera",
        geolocator: Geolocator | None = None,
        poses: PoseSource | None = None,
        tracker: TrackerStage | None = None,
        smoother: TrackSmoother | None = None,
        alerts: AlertEngine | None = None,
        alert_sinks: Iterable[AlertSink] = (),
        detection_sinks: Iterable[DetectionSink] = (),
        evidence: EvidenceLog | None = None,
    ) -> None:
        self.detector = detector
        self.source_name = source_name
        self.geolocator = geolocator
        self.poses = poses
        self.tracker = tracker
        self.smoother = smoother if smoother is not None else (TrackSmoother() if geolocator else None)
        self.alerts = alerts
        self.alert_sinks = tuple(alert_sinks)
        self.detection_sinks = tuple(detection_sinks)
        self.evidence = evidence
        self.stats = RunStats()

    def process(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
        found = self.detector.detect(frame.image)
        detect_s = time.perf_counter() - started
        pose = self.poses.pose_at(frame.time_s) if self.poses is not None else None
        if pose is not None and self.geolocator is not None and found:
            found = self._locate(found, pose)
        detections = Detections(self.source_name, frame.time_s, frame.index, tuple(found))
        if self.tracker is not None:
            detections = self.tracker.update(detections)
        if self.smoother is not None:
            detections = self._smooth(detections)
        raised = tuple(self.alerts.process(detections)) if self.alerts is not None else ()
        for sink in self.detection_sinks:
            sink.emit_detections(detections)
        for alert in raised:
            for sink in self.alert_sinks:
                sink.emit(alert)
            if self.evidence is not None:
                self._keep(alert, detections, frame, pose)
        done = time.time()
        result = FrameResult(
            frame.index, frame.time_s, detections, raised, pose, detect_s, time.perf_counter() - started, done
        )
        self._count(result)
        return result

    def run(
        self,
        source,
        stop: threading.Event | None = None,
        max_frames: int | None = None,
        on_result: Callable[[FrameResult, Frame], None] | None = None,
        idle_timeout_s: float | None = None,
    ) -> RunStats:
        """Process frames until the source ends, `stop` is set, `max_frames` are done or nothing came for a while.

        `on_result` gets each result with the frame it came from (to draw on, or to drop).
        """
        stop = stop or threading.Event()
        last_frame = time.monotonic()
        done = 0
        while not stop.is_set() and (max_frames is None or done < max_frames):
            frame = source.read(timeout_s=0.25)
            if frame is None:
                if source.finished:
                    break
                if idle_timeout_s is not None and time.monotonic() - last_frame > idle_timeout_s:
                    break
                continue
            last_frame = time.monotonic()
            result = self.process(frame)
            done += 1
            if on_result is not None:
                on_result(result, frame)
        return self.stats

    def _locate(self, found: tuple[Detection, ...], pose: CameraPose) -> tuple[Detection, ...]:
        fixes = self.geolocator.locate_boxes(np.array([d.box_px for d in found]), pose)
        return tuple(
            d
            if fix is None
            else dataclasses.replace(d, x_m=fix.x_m, y_m=fix.y_m, lat_deg=fix.lat_deg, lon_deg=fix.lon_deg)
            for d, fix in zip(found, fixes, strict=True)
        )

    def _smooth(self, detections: Detections) -> Detections:
        items = []
        frame = self.geolocator.frame if self.geolocator is not None else None
        for d in detections:
            if d.track_id is None or not d.has_local_position or frame is None:
                items.append(d)
                continue
            smoothed = self.smoother.update(d.track_id, detections.frame_time_s, d.x_m, d.y_m)
            lon_deg, lat_deg = frame.lonlat(smoothed.x_m, smoothed.y_m)
            items.append(dataclasses.replace(d, x_m=smoothed.x_m, y_m=smoothed.y_m, lat_deg=lat_deg, lon_deg=lon_deg))
        return Detections(detections.source, detections.frame_time_s, detections.frame_index, tuple(items))

    def _keep(self, alert: Alert, detections: Detections, frame: Frame, pose: CameraPose | None) -> None:
        subject = next((d for d in detections if alert.track_id is not None and d.track_id == alert.track_id), None)
        payload = {
            "alert": alert.to_json_dict(),
            "frame_index": frame.index,
            "frame_time_s": frame.time_s,
            "detection": None
            if subject is None
            else {
                "box_px": list(subject.box_px),
                "confidence": subject.confidence,
                "class": subject.object_class.value,
            },
            "pose": None if pose is None else dataclasses.asdict(pose),
        }
        label = f"{alert.object_class.value} {alert.track_id or ''} {alert.zone}".strip()
        jpeg = snapshot_jpeg(frame.image, None if subject is None else subject.box_px, label)
        self.evidence.append("alert", payload, snapshot_jpeg=jpeg, time_s=alert.time_s)
        self.stats.evidence_records += 1

    def _count(self, result: FrameResult) -> None:
        self.stats.frames += 1
        self.stats.detections += len(result.detections)
        self.stats.alerts += len(result.alerts)
        self.stats.latencies_s.append(result.latency_s)
        self.stats.detect_s.append(result.detect_s)
        if len(self.stats.latencies_s) > 10_000:
            del self.stats.latencies_s[:5_000], self.stats.detect_s[:5_000]

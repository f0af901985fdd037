"""Frames in, located and tracked detections, alerts and evidence out.

    Source → Detector → Geolocate → Tracker → SmoothTracks → sinks (alert rules, evidence, …)

Geolocation comes before tracking, against the order one might draw it: a drone that turns
sweeps every object across the image, but not across the ground, so the tracker associates
in site metres whenever the camera pose is known and only falls back to pixels without one.

Every stage, the detector first, is a small object with one shape: a frame's detections and
the frame in, new detections out. The sinks (vision.sinks: alert rules, evidence, the alert
and detection sinks) then get the frame's result in turn. The pipeline owns no threads: `run`
reads a source until it ends or is stopped and hands every `FrameResult` (a frozen snapshot)
to a callback — the CLI prints it, vision.worker runs it on a thread for the demo and the
GUI, a test collects it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vision.alerts import Alert
from vision.camera import CameraPose
from vision.detections import Detections
from vision.detectors.base import Detector
from vision.frames import Frame
from vision.palette import CLASS_BGR


class Stage(Protocol):
    """One step from a frame's detections to better ones: locate them, track them, smooth them."""

    def __call__(self, detections: Detections, frame: Frame) -> Detections: ...


class Sink(Protocol):
    """Where a frame's result goes. The pipeline hands it to its sinks in order and each hands
    it on, as it was or with what it added: the alert rules add the frame's alerts (so the
    sinks after them see them), the evidence sink the number of records it kept."""

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult: ...


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
    evidence_records: int = 0  # kept of this frame's alerts
    # alert_id → the AIS reports an alert rests on (vision.ais.watch), for its evidence record
    ais_reports: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    # alert_id → the snapshot file its evidence record names (vision.sinks.KeepEvidence)
    snapshots: Mapping[str, Path] = field(default_factory=dict)

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
        colour = CLASS_BGR[d.object_class]
        x1, y1, x2, y2 = (round(v) for v in d.box_px)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        label = f"{d.object_class.value}{'' if d.track_id is None else f' #{d.track_id}'} {d.confidence:.2f}"
        cv2.putText(canvas, label, (x1, max(12, y1 - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return canvas


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
    """One video stream's detector, then its other stages, then its sinks.

    The detector is timed on its own (`detect_s`); `stages` follow it in order and `sinks`
    get each frame's result in order. `source_name` names the stream in its detections and
    alerts. `total_s` and `done_s` count the sinks' work, so the sinks see them NaN.
    """

    def __init__(
        self,
        detector: Detector,
        stages: Iterable[Stage] = (),
        sinks: Iterable[Sink] = (),
        *,
        source_name: str = "camera",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.detector = detector
        self.stages = tuple(stages)
        self.sinks = tuple(sinks)
        self.source_name = source_name
        self._clock = clock  # the frames' clock, for their latency
        self.stats = RunStats()

    def process(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
        detections = self.detector(Detections(self.source_name, frame.time_s, frame.index), frame)
        detect_s = time.perf_counter() - started
        for stage in self.stages:
            detections = stage(detections, frame)
        unknown_yet = math.nan
        result = FrameResult(
            frame.index, frame.time_s, detections, (), detections.pose, detect_s, unknown_yet, unknown_yet
        )
        for sink in self.sinks:
            result = sink(result, frame)
        result = dataclasses.replace(result, total_s=time.perf_counter() - started, done_s=self._clock())
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

    def _count(self, result: FrameResult) -> None:
        self.stats.frames += 1
        self.stats.detections += len(result.detections)
        self.stats.alerts += len(result.alerts)
        self.stats.evidence_records += result.evidence_records
        self.stats.latencies_s.append(result.latency_s)
        self.stats.detect_s.append(result.detect_s)
        if len(self.stats.latencies_s) > 10_000:
            del self.stats.latencies_s[:5_000], self.stats.detect_s[:5_000]

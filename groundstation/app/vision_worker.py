"""One video stream's vision pipeline on a thread of its own, reporting to Qt with frozen values.

The pipeline (``vision.runner.assemble``) reads, detects, locates, tracks and alerts on a
worker thread. What reaches the interface:

* frames newest-only: the worker keeps the latest annotated frame, already shrunk to the
  size it will be shown at, and signals ``frame`` only when none is waiting; the view pulls
  it with :meth:`VisionWorker.take_frame`. A view slower than the camera skips frames (they
  are counted as drops) and no queue builds up between the threads.
* ``detections`` (each frame with at least one), ``alert`` (with the JPEG snapshot),
  ``error`` (one line naming the stream) as queued signals;
* ``stats`` twice a second from a timer on the interface thread, which also notices a
  silent stream: the source keeps reconnecting, the status says for how long nothing came.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from missions.errors import UserError
from missions.site import Site
from vision.detections import Detections
from vision.frames import Frame, Source
from vision.pipeline import FrameResult, annotate, snapshot_jpeg
from vision.runner import Assembly, RunOptions, assemble

NO_VIDEO_AFTER_S = 3.0
STATS_INTERVAL_MS = 500
_FPS_WINDOW_S = 2.0


@dataclass(frozen=True)
class StreamConfig:
    """What an operator names to watch one camera: a source, and optionally where its pose comes from."""

    name: str
    source: str  # an SDP file, udp://HOST:PORT, rtp://…, rtsp://…, a video file or an image folder
    pose_url: str | None = None  # the vehicle's MAVLink (pymavlink URL): without it nothing is located
    vehicle: int | None = None  # the fleet index (from 0) the camera rides on, for the run folder
    model: str | None = None  # None: the bundled model
    conf: float = 0.25

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise UserError("a stream needs a name")
        if not self.source.strip():
            raise UserError(f"stream {self.name!r}: no source given (an SDP file, udp://HOST:PORT, rtsp://…)")
        if not 0 < self.conf < 1:
            raise UserError(f"stream {self.name!r}: confidence must be between 0 and 1, not {self.conf}")

    def to_json_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> StreamConfig:
        vehicle = data.get("vehicle")
        return cls(
            name=str(data["name"]),
            source=str(data["source"]),
            pose_url=data.get("pose_url") or None,
            vehicle=None if vehicle is None else int(vehicle),
            model=data.get("model") or None,
            conf=float(data.get("conf", 0.25)),
        )


@dataclass(frozen=True)
class StreamStats:
    """How a stream fares, as its caption shows it."""

    name: str
    status: str  # "starting…", "connecting…", "live", "no video for N s", "failed", "stopped"
    fps: float
    latency_ms: float | None  # capture to result, of the newest frame
    drops: int  # frames never shown: skipped by the source for a slow pipeline, or by a slow view
    frames: int  # frames processed

    @property
    def caption(self) -> str:
        parts = [self.name, self.status]
        if self.frames:
            parts.append(f"{self.fps:.1f} fps")
            if self.latency_ms is not None:
                parts.append(f"{self.latency_ms:.0f} ms")
            parts.append(f"{self.drops} dropped")
        return " · ".join(parts)


class VisionWorker(QObject):
    """Runs one stream's pipeline on a thread from :meth:`start` until :meth:`stop`.

    `site` gives the watch zones to alert on (None: detect only). `recorder` (a run folder's
    recorder, or None) gets every frame (``record_frame``), alert (``emit``) and detection
    frame (``emit_detections``), and its ``evidence`` log keeps the alerts' evidence.
    """

    frame = pyqtSignal()  # a frame waits: take_frame()
    detections = pyqtSignal(object)  # Detections, of frames with at least one
    alert = pyqtSignal(object, object)  # Alert, snapshot JPEG bytes
    stats = pyqtSignal(object)  # StreamStats
    error = pyqtSignal(str)  # one line, naming the stream
    finished = pyqtSignal()

    def __init__(
        self,
        config: StreamConfig,
        site: Site | None = None,
        recorder: Any | None = None,
        *,
        ground_amsl_m: float = 0.0,
        no_video_after_s: float = NO_VIDEO_AFTER_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.config = config
        self._site = site
        self._recorder = recorder
        self._ground_amsl_m = ground_amsl_m
        self._no_video_after_s = no_video_after_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._display_size: tuple[int, int] | None = None
        self._pending: np.ndarray | None = None
        self._signalled = False
        self._view_drops = 0
        self._frames = 0
        self._done_times: collections.deque[float] = collections.deque(maxlen=1000)
        self._latency_ms: float | None = None
        self._source: Source | None = None
        self._started_s = 0.0
        self._last_frame_s: float | None = None
        self._state = "idle"  # idle, starting, running, failed, stopped
        self._silence_reported = False
        self._recorder_failed = False
        self._timer = QTimer(self)
        self._timer.setInterval(STATS_INTERVAL_MS)
        self._timer.timeout.connect(self._report)
        self.finished.connect(self._on_finished)
        # Not a slot of this object, so it still runs when the object is deleted with its thread alive.
        stop = self._stop
        self.destroyed.connect(lambda *_: stop.set())

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._state = "starting"
        self._started_s = time.monotonic()
        self._thread = threading.Thread(target=self._work, name=f"vision {self.name}", daemon=True)
        self._thread.start()
        self._timer.start()

    def stop(self, wait: bool = True, timeout_s: float = 5.0) -> bool:
        """Ask the thread to end; with `wait`, join it for up to `timeout_s`. True once it has ended."""
        self._stop.set()
        if self._thread is None:
            return True
        if wait:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def set_display_size(self, width_px: int, height_px: int) -> None:
        """The size frames are shown at: they are shrunk to it on the worker, off the interface thread."""
        with self._lock:
            self._display_size = (max(1, width_px), max(1, height_px))

    def take_frame(self) -> np.ndarray | None:
        """The newest annotated BGR frame not yet taken, or None."""
        with self._lock:
            image, self._pending, self._signalled = self._pending, None, False
        return image

    def current_stats(self) -> StreamStats:
        now = time.monotonic()
        with self._lock:
            while self._done_times and now - self._done_times[0] > _FPS_WINDOW_S:
                self._done_times.popleft()
            window_s = min(_FPS_WINDOW_S, now - self._started_s) if self._started_s else 0.0
            fps = len(self._done_times) / window_s if window_s > 0.2 else 0.0
            frames, latency_ms, view_drops = self._frames, self._latency_ms, self._view_drops
            source, last_frame_s, state = self._source, self._last_frame_s, self._state
        source_drops = 0
        if source is not None:
            source_drops = source.stats().frames_dropped
        return StreamStats(
            self.name, self._status(state, now, last_frame_s), fps, latency_ms, source_drops + view_drops, frames
        )

    # ------------------------------------------------------------ worker thread
    def _work(self) -> None:
        assembly: Assembly | None = None
        try:
            options = RunOptions(
                self.config.source,
                model=self.config.model,
                conf=self.config.conf,
                pose_url=self.config.pose_url,
                ground_amsl_m=self._ground_amsl_m,
                name=self.name,
                console=False,
            )
            recorder = self._recorder
            assembly = assemble(
                options,
                site=self._site,
                evidence=getattr(recorder, "evidence", None),
                alert_sinks=() if recorder is None else (recorder,),
                detection_sinks=() if recorder is None else (recorder,),
            )
            with self._lock:
                self._source, self._state = assembly.source, "running"
            if not self._stop.is_set():
                assembly.pipeline.run(assembly.source, stop=self._stop, on_result=self._on_result)
            with self._lock:
                self._state = "stopped"
        except UserError as error:
            self._fail(f"{self.name}: {error}")
        except Exception as error:  # whatever breaks one stream is reported; the others run on
            self._fail(f"{self.name}: {type(error).__name__}: {error}")
        finally:
            if assembly is not None:
                assembly.close()
            self._emit(self.finished)

    def _on_result(self, result: FrameResult, frame: Frame) -> None:
        shown = self._display_image(frame.image, result.detections)
        done_s = time.monotonic()
        with self._lock:
            if self._pending is not None:
                self._view_drops += 1
            self._pending = shown
            notify, self._signalled = not self._signalled, True
            self._frames += 1
            self._done_times.append(done_s)
            self._last_frame_s = done_s
            self._latency_ms = result.latency_s * 1000.0 if math.isfinite(result.latency_s) else None
        if notify:
            self._emit(self.frame)
        if len(result.detections):
            self._emit(self.detections, result.detections)
        for alert in result.alerts:
            subject = next(
                (d for d in result.detections if d.track_id is not None and d.track_id == alert.track_id), None
            )
            label = f"{alert.object_class.value} {alert.track_id or ''} {alert.zone}".strip()
            jpeg = snapshot_jpeg(frame.image, None if subject is None else subject.box_px, label)
            self._emit(self.alert, alert, jpeg)
        if self._recorder is not None and not self._recorder_failed:
            try:
                self._recorder.record_frame(self.config.vehicle, result)
            except Exception as error:  # a full disk must not stop the video; say so once
                self._recorder_failed = True
                self._emit(self.error, f"{self.name}: recording frames failed: {type(error).__name__}: {error}")

    def _display_image(self, image: np.ndarray, detections: Detections) -> np.ndarray:
        with self._lock:
            size = self._display_size
        height, width = image.shape[:2]
        scale = 1.0 if size is None else min(size[0] / width, size[1] / height, 1.0)
        if scale >= 0.999:
            return annotate(image, detections)
        small = cv2.resize(
            image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
        items = tuple(dataclasses.replace(d, box_px=tuple(v * scale for v in d.box_px)) for d in detections)
        return annotate(small, dataclasses.replace(detections, items=items))

    def _fail(self, message: str) -> None:
        with self._lock:
            self._state = "failed"
        self._emit(self.error, message)

    def _emit(self, signal, *args) -> None:
        with contextlib.suppress(RuntimeError):  # the QObject is gone (the app is closing): nobody listens
            signal.emit(*args)

    # ------------------------------------------------------------ interface thread
    def _status(self, state: str, now: float, last_frame_s: float | None) -> str:
        if state in ("idle", "starting"):
            return "starting…"
        if state in ("failed", "stopped"):
            return state
        silent_s = now - (last_frame_s if last_frame_s is not None else self._started_s)
        if silent_s < self._no_video_after_s:
            return "live" if last_frame_s is not None else "connecting…"
        return f"no video for {silent_s:.0f} s"

    def _report(self) -> None:
        stats = self.current_stats()
        if stats.status.startswith("no video"):
            if not self._silence_reported:
                self._silence_reported = True
                last_error = self._source.stats().last_error if self._source is not None else None
                why = f"; last error: {last_error}" if last_error else ""
                self.error.emit(f"{self.name}: {stats.status} from {self.config.source}, still trying{why}")
        elif stats.status == "live":
            self._silence_reported = False
        self.stats.emit(stats)

    def _on_finished(self) -> None:
        self._timer.stop()
        self.stats.emit(self.current_stats())

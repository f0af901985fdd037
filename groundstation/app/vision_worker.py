"""One video stream's vision pipeline on a thread of its own, reporting to Qt with frozen values.

A :class:`vision.worker.StreamWorker` runs the pipeline (``vision.runner.assemble``): it reads,
detects, locates, tracks and alerts on a worker thread; :class:`VisionWorker` owns one and
turns what it reports into signals. What reaches the interface:

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

import contextlib
import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from missions.errors import UserError
from missions.site import Site
from vision.detections import Detections
from vision.frames import Frame, StreamClock
from vision.pipeline import FrameResult, annotate, snapshot_jpeg
from vision.runner import Assembly, RunOptions, assemble
from vision.worker import NO_VIDEO_AFTER_S, StreamStats, StreamWorker

STATS_INTERVAL_MS = 500


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


class VisionWorker(QObject):
    """Runs one stream's pipeline on a thread from :meth:`start` until :meth:`stop`.

    `site` gives the watch zones to alert on (None: detect only). `recorder` (a run folder's
    recorder, or None) gets every frame (``record_frame``), alert (``emit``) and detection
    frame (``emit_detections``), and its ``evidence`` log keeps the alerts' evidence. `ais` (the
    station's AIS feed, shared by every stream and closed by its owner) binds the stream's vessel
    tracks to MMSIs and raises the dark-vessel and ais-not-seen alerts, when the stream has a pose.
    `cot` (the station's link to TAK, shared and closed by its owner) gets the stream's tracks, alerts
    and camera view as drone `cot_drone`'s; the drone's own position comes from the fleet's telemetry,
    except for a camera on no fleet vehicle (``config.vehicle`` None), placed by its pose.
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
        clock: StreamClock | None = None,
        ais: Any | None = None,
        cot: Any | None = None,
        cot_drone: int | None = None,
        parent: QObject | None = None,
    ) -> None:
        """`clock`: a simulation's, when its cameras stamp the frames by it (vision.frames.StreamClock)."""
        super().__init__(parent)
        self.config = config
        self.clock = clock or StreamClock()
        self._site = site
        self._recorder = recorder
        self._ground_amsl_m = ground_amsl_m
        # AIS is placed by the camera's pose on the site's map: a stream without either just detects.
        self._ais = ais if site is not None and config.pose_url else None
        self._cot = cot
        self._cot_drone = cot_drone if cot_drone is not None else (config.vehicle or 0) + 1
        self._lock = threading.Lock()
        self._display_size: tuple[int, int] | None = None
        self._pending: np.ndarray | None = None
        self._signalled = False
        self._view_drops = 0
        self._silence_reported = False
        self._recorder_failed = False
        self._worker = StreamWorker(
            config.name,
            self._assemble,
            pace=self.clock.pace,
            on_result=self._on_result,
            on_error=self._on_error,
            on_finished=lambda: self._emit(self.finished),
            no_video_after_s=no_video_after_s,
        )
        self._timer = QTimer(self)
        self._timer.setInterval(STATS_INTERVAL_MS)
        self._timer.timeout.connect(self._report)
        self.finished.connect(self._on_finished)
        # Not a slot of this object, so it still runs when the object is deleted with its thread alive.
        worker = self._worker
        self.destroyed.connect(lambda *_: worker.stop(wait=False))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def ais(self) -> Any | None:
        """The AIS feed this stream's pipeline matches its vessels against (None: it has none, or no pose)."""
        return self._ais

    @property
    def cot(self) -> Any | None:
        """The link to TAK this stream's pipeline sends into (None: none)."""
        return self._cot

    @property
    def running(self) -> bool:
        return self._worker.running

    def start(self) -> None:
        if self._worker.state != "idle":
            return
        self._worker.start()
        self._timer.start()

    def stop(self, wait: bool = True, timeout_s: float = 5.0) -> bool:
        """Ask the thread to end; with `wait`, join it for up to `timeout_s`. True once it has ended."""
        return self._worker.stop(wait, timeout_s)

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
        stats = self._worker.stats()
        with self._lock:
            view_drops = self._view_drops
        return dataclasses.replace(stats, drops=stats.drops + view_drops)

    # ------------------------------------------------------------ worker thread
    def _assemble(self) -> Assembly:
        options = RunOptions(
            self.config.source,
            model=self.config.model,
            conf=self.config.conf,
            pose_url=self.config.pose_url,
            ground_amsl_m=self._ground_amsl_m,
            name=self.name,
            console=False,
            cot_drone=self._cot_drone,
        )
        recorder = self._recorder
        return assemble(
            options,
            site=self._site,
            evidence=getattr(recorder, "evidence", None),
            alert_sinks=() if recorder is None else (recorder,),
            detection_sinks=() if recorder is None else (recorder,),
            clock=self.clock,
            ais=self._ais,
            cot=self._cot,
            cot_position_from_pose=self.config.vehicle is None,
        )

    def _on_result(self, result: FrameResult, frame: Frame) -> None:
        shown = self._display_image(frame.image, result.detections)
        with self._lock:
            if self._pending is not None:
                self._view_drops += 1
            self._pending = shown
            notify, self._signalled = not self._signalled, True
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

    def _on_error(self, error: Exception) -> None:
        if isinstance(error, UserError):
            self._emit(self.error, f"{self.name}: {error}")
        else:
            self._emit(self.error, f"{self.name}: {type(error).__name__}: {error}")

    def _emit(self, signal, *args) -> None:
        with contextlib.suppress(RuntimeError):  # the QObject is gone (the app is closing): nobody listens
            signal.emit(*args)

    # ------------------------------------------------------------ interface thread
    def _report(self) -> None:
        stats = self.current_stats()
        if stats.status.startswith("no video"):
            if not self._silence_reported:
                self._silence_reported = True
                source = self._worker.source_stats()
                last_error = source.last_error if source is not None else None
                why = f"; last error: {last_error}" if last_error else ""
                self.error.emit(f"{self.name}: {stats.status} from {self.config.source}, still trying{why}")
        elif stats.status == "live":
            self._silence_reported = False
        self.stats.emit(stats)

    def _on_finished(self) -> None:
        self._timer.stop()
        self.stats.emit(self.current_stats())

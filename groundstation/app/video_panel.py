"""The live video of every stream, side by side, with its detections boxed.

Each stream is a :class:`VisionWorker` (its pipeline on a thread) and a tile: a
:class:`VideoView` and a caption with the stream's name, rate, latency and status. The
panel passes the workers' detections, alerts and errors on as its own signals; the main
window wires them to the map and the alerts panel.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QSettings, Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from groundstation.app.video_window import VideoView
from groundstation.app.vision_worker import StreamConfig, StreamStats, VisionWorker
from missions.errors import UserError
from missions.site import Site
from vision.frames import StreamClock

_SETTINGS_STREAMS = "video/streams"
_SETTINGS_SOURCE = "video/last_source"
_SETTINGS_POSE = "video/last_pose_url"
# A camera on no fleet vehicle goes by drone 101, 102… on TAK screens: placed by its own pose, it must not
# move the marker a fleet vehicle's telemetry places.
UNBOUND_DRONES = 100


class _Tile(QFrame):
    """One stream: its caption, a remove button and the video."""

    def __init__(self, worker: VisionWorker, on_remove: Callable[[str], None]) -> None:
        super().__init__()
        self.worker = worker
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.caption = QLabel(f"{worker.name} · starting…")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip(f"Stop and remove {worker.name}")
        close.setAutoRaise(True)
        close.clicked.connect(lambda: on_remove(worker.name))
        header = QHBoxLayout()
        header.setContentsMargins(4, 2, 2, 0)
        header.addWidget(self.caption, 1)
        header.addWidget(close)
        self.view = VideoView()
        self.view.setMinimumSize(160, 90)  # several tiles share a dock: let them shrink instead of scrolling
        self.view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        self.last_stats: StreamStats | None = None
        self._problem: str | None = None
        self.view.setWordWrap(True)
        worker.frame.connect(self._show_frame)
        worker.stats.connect(self._show_stats)
        worker.error.connect(self._show_error)

    def _show_frame(self) -> None:
        image = self.worker.take_frame()
        if image is not None:
            self.view.show_bgr(image)

    def _show_error(self, message: str) -> None:
        self._problem = message
        if not self.view.frames_shown:
            self.view.setText(message)

    def _show_stats(self, stats: StreamStats) -> None:
        self.last_stats = stats
        self.caption.setText(stats.caption)
        self.caption.setToolTip(f"{self.worker.config.source}\n{stats.caption}")
        if not self.view.frames_shown:
            self.view.setText(self._problem or f"{stats.name}: {stats.status}")
        colour = "#c62828" if stats.status in ("failed",) or stats.status.startswith("no video") else ""
        self.caption.setStyleSheet(f"color: {colour}" if colour else "")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.worker.set_display_size(self.view.width(), self.view.height())


class VideoPanel(QWidget):
    """A grid of live streams and a control to add one.

    `site_provider` gives the site whose watch zones streams alert on (read when a stream
    starts), `recorder_provider` the run recorder to record into (None: nothing recorded),
    `ais_provider` the station's AIS feed (None: no feed open), matched to the vessels of every
    stream with a pose, `cot_provider` the station's link to TAK (None: none), which every stream's
    tracks, alerts and camera view go to.
    """

    detections = pyqtSignal(object)  # Detections
    alert = pyqtSignal(object, object)  # Alert, snapshot JPEG bytes or None
    error = pyqtSignal(str)  # one line naming the stream
    streams_changed = pyqtSignal()

    def __init__(
        self,
        site_provider: Callable[[], Site | None],
        recorder_provider: Callable[[], Any | None],
        settings: QSettings | None = None,
        parent: QWidget | None = None,
        ais_provider: Callable[[], Any | None] = lambda: None,
        cot_provider: Callable[[], Any | None] = lambda: None,
    ) -> None:
        super().__init__(parent)
        self._cot_provider = cot_provider
        self._site_provider = site_provider
        self._recorder_provider = recorder_provider
        self._ais_provider = ais_provider
        self._settings = settings
        self._tiles: dict[str, _Tile] = {}
        self._columns = 1
        self._stopping: set[VisionWorker] = set()
        self._restart_held: bool | None = None  # while held: whether a restart was asked for

        self.source_edit = QLineEdit()
        self.source_edit.setPlaceholderText("camera-1.sdp, udp://0.0.0.0:5600, rtsp://…, or a video file")
        self.source_edit.setToolTip("The video: an SDP file, udp://HOST:PORT, rtp://, rtsp:// or a video file")
        self.pose_edit = QLineEdit()
        self.pose_edit.setPlaceholderText("pose: udpout:127.0.0.1:14580 (optional)")
        self.pose_edit.setToolTip("The drone's MAVLink, to place detections on the map (pymavlink URL)")
        self.add_button = QPushButton("Add stream…")
        self.add_button.clicked.connect(self._add_from_fields)
        self.source_edit.returnPressed.connect(self._add_from_fields)
        self.message = QLabel()
        self.message.setStyleSheet("color: #c62828")
        self.message.setWordWrap(True)
        self.message.hide()

        controls = QHBoxLayout()
        controls.addWidget(self.source_edit, 3)
        controls.addWidget(self.pose_edit, 2)
        controls.addWidget(self.add_button)

        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(4)
        self._empty = QLabel("No video. Add a stream: a drone's SDP file, udp://HOST:PORT or rtsp://…")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setStyleSheet("color: #777")
        self._grid.addWidget(self._empty, 0, 0)
        scroll = self._scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._grid_host)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.message)
        layout.addLayout(controls)
        if settings is not None:
            self._restore_fields(settings)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop_all)

    # ------------------------------------------------------------ streams
    def add_stream(self, config: StreamConfig, clock: StreamClock | None = None) -> VisionWorker:
        """Start watching a stream; raises UserError when one of that name is already shown.

        `clock`: the stream's, when a simulation stamps its frames (kept for when it restarts)."""
        if config.name in self._tiles:
            raise UserError(f"a stream named {config.name!r} is already shown: remove it first or pick another name")
        drone = None
        if config.vehicle is None:
            drone = UNBOUND_DRONES + 1 + sum(t.worker.config.vehicle is None for t in self._tiles.values())
        worker = VisionWorker(config, self._site_provider(), self._recorder_provider(), clock=clock,
                              ais=self._ais_provider(), cot=self._cot_provider(), cot_drone=drone,
                              parent=self)  # fmt: skip
        worker.detections.connect(self.detections)
        worker.alert.connect(self.alert)
        worker.error.connect(self.error)
        worker.finished.connect(lambda w=worker: self._forget(w))
        tile = _Tile(worker, self.remove_stream)
        self._tiles[config.name] = tile
        self._relayout()
        worker.start()
        self.streams_changed.emit()
        return worker

    def remove_stream(self, name: str) -> bool:
        """Stop a stream (without waiting for its thread) and take its tile away; False if none had that name."""
        tile = self._tiles.pop(name, None)
        if tile is None:
            return False
        self._stopping.add(tile.worker)
        tile.worker.stop(wait=False)
        tile.setParent(None)
        tile.deleteLater()
        self._relayout()
        self.streams_changed.emit()
        return True

    def streams(self) -> tuple[StreamConfig, ...]:
        return tuple(tile.worker.config for tile in self._tiles.values())

    def worker(self, name: str) -> VisionWorker:
        return self._tiles[name].worker

    def view(self, name: str) -> VideoView:
        return self._tiles[name].view

    def caption(self, name: str) -> str:
        return self._tiles[name].caption.text()

    def stop_all(self, timeout_s: float = 5.0) -> None:
        """Stop every stream and wait (bounded) for their threads: call before the window closes."""
        workers = [tile.worker for tile in self._tiles.values()] + list(self._stopping)
        for worker in workers:
            worker.stop(wait=False)
        for worker in workers:
            worker.stop(wait=True, timeout_s=timeout_s / max(1, len(workers)))

    def restart_all(self) -> None:
        """Stop every stream and start it again: its pipeline takes the site, recorder, AIS feed and TAK
        link there are now (each holds those it was built with)."""
        if self._restart_held is not None:
            self._restart_held = True
            return
        configs = [(c, self.worker(c.name).clock) for c in self.streams()]
        for config, _ in configs:
            self.remove_stream(config.name)
        self.stop_all()  # waits, bounded, for the removed streams' threads
        for config, clock in configs:
            self.add_stream(config, clock)

    @contextlib.contextmanager
    def restarts_held(self) -> Iterator[None]:
        """Restarts asked for inside (a new AIS feed and a new TAK link, for a new site) done once, after."""
        self._restart_held = False
        try:
            yield
        finally:
            held, self._restart_held = self._restart_held, None
            if held:
                self.restart_all()

    def _forget(self, worker: VisionWorker) -> None:
        if worker in self._stopping:
            self._stopping.discard(worker)
            worker.deleteLater()

    def _add_from_fields(self) -> None:
        source = self.source_edit.text().strip()
        pose_url = self.pose_edit.text().strip() or None
        try:
            config = StreamConfig(self._unique_name(source), source, pose_url)
            self.add_stream(config)
        except UserError as error:
            self._show_message(str(error))
            self.error.emit(str(error))
            return
        self._show_message("")

    def _unique_name(self, source: str) -> str:
        stem = Path(source).stem if "://" not in source else source.rsplit("/", 1)[-1]
        base = stem or f"stream {len(self._tiles) + 1}"
        name, n = base, 2
        while name in self._tiles:
            name, n = f"{base} ({n})", n + 1
        return name

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _relayout(self) -> None:
        while self._grid.count():
            self._grid.takeAt(0)
        tiles = list(self._tiles.values())
        self._empty.setVisible(not tiles)
        if not tiles:
            self._grid.addWidget(self._empty, 0, 0)
            return
        columns = best_columns(len(tiles), *self._room())
        self._columns = columns
        for i, tile in enumerate(tiles):
            self._grid.addWidget(tile, i // columns, i % columns)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._tiles and best_columns(len(self._tiles), *self._room()) != self._columns:
            self._relayout()

    def _room(self) -> tuple[int, int]:
        viewport = self._scroll.viewport()
        return viewport.width(), viewport.height()

    # ------------------------------------------------------------ settings
    def _restore_fields(self, settings: QSettings) -> None:
        self.source_edit.setText(str(settings.value(_SETTINGS_SOURCE, "") or ""))
        self.pose_edit.setText(str(settings.value(_SETTINGS_POSE, "") or ""))

    def save_state(self, settings: QSettings) -> None:
        settings.setValue(_SETTINGS_STREAMS, json.dumps([c.to_json_dict() for c in self.streams()]))
        settings.setValue(_SETTINGS_SOURCE, self.source_edit.text())
        settings.setValue(_SETTINGS_POSE, self.pose_edit.text())

    def restore_state(self, settings: QSettings) -> None:
        """Refill the fields and reopen the streams of the last session (each keeps trying until its video
        comes). Call it once the site is open: a stream reads its site when it starts."""
        self._restore_fields(settings)
        try:
            saved = json.loads(str(settings.value(_SETTINGS_STREAMS, "[]") or "[]"))
        except json.JSONDecodeError:
            return
        for item in saved if isinstance(saved, list) else ():
            try:
                config = StreamConfig.from_json_dict(item)
            except (KeyError, TypeError, ValueError, UserError):
                continue
            if config.name not in self._tiles:
                self.add_stream(config)


def best_columns(tiles: int, width_px: int, height_px: int, aspect: float = 16 / 9) -> int:
    """How many columns show `tiles` videos of `aspect` biggest in a panel of this size.

    A tall, narrow dock stacks them; a wide one puts them side by side.
    """
    best, best_width = 1, -1.0
    for columns in range(1, max(1, tiles) + 1):
        rows = math.ceil(tiles / columns)
        video_width = min(width_px / columns, height_px / rows * aspect)
        if video_width > best_width + 1e-9:
            best, best_width = columns, video_width
    return best

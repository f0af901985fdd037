"""A window that shows a pipeline's video with its detections (`borderwatch detect --show`).

Qt owns the main thread; the pipeline runs on a worker thread and hands each annotated
frame over through a queued signal, newest only: a window that repaints slower than the
camera skips frames instead of queueing them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QImage, QPixmap
from PyQt6.QtWidgets import QApplication, QLabel

from vision.pipeline import annotate


class VideoView(QLabel):
    """Shows BGR frames scaled to the widget, keeping their aspect ratio."""

    def __init__(self) -> None:
        super().__init__()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(320, 180)
        self.setStyleSheet("background: black; color: #ccc")
        self.setText("waiting for video…")
        self.frames_shown = 0

    def show_bgr(self, image: np.ndarray) -> None:
        rgb = np.ascontiguousarray(image[..., ::-1])
        h, w = rgb.shape[:2]
        qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(qimage).scaled(
            self.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.setPixmap(pixmap)
        self.frames_shown += 1


class _Bridge(QObject):
    frame = pyqtSignal()
    finished = pyqtSignal()


def run_with_window(work: Callable[[Callable], object], stop: threading.Event, title: str = "borderwatch"):
    """Run `work(callback)` on a thread while a window shows what the callback receives; its result."""
    app = QApplication.instance() or QApplication([])
    view = VideoView()
    view.setWindowTitle(title)
    view.resize(960, 540)
    bridge = _Bridge()
    latest: list[np.ndarray | None] = [None]
    lock = threading.Lock()
    outcome: dict[str, object] = {}

    def callback(result, frame) -> None:
        with lock:
            latest[0] = annotate(frame.image, result.detections)
        bridge.frame.emit()

    def paint() -> None:
        with lock:
            image, latest[0] = latest[0], None
        if image is not None:
            view.show_bgr(image)

    def worker() -> None:
        try:
            outcome["result"] = work(callback)
        except BaseException as exc:  # re-raised on the main thread once the window is gone
            outcome["error"] = exc
        finally:
            bridge.finished.emit()

    bridge.frame.connect(paint, Qt.ConnectionType.QueuedConnection)
    bridge.finished.connect(app.quit, Qt.ConnectionType.QueuedConnection)
    app.lastWindowClosed.connect(stop.set)
    view.show()
    thread = threading.Thread(target=worker, name="detect-pipeline", daemon=True)
    thread.start()
    app.exec()
    stop.set()
    thread.join(timeout=5.0)
    view.close()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("result")

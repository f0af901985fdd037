"""What every detector is: one frame in, that frame's detections out."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from missions.errors import InputError
from vision.detections import Detection, Detections
from vision.frames import Frame


class DetectorError(InputError):
    """A model file that cannot be used: missing, not a model, or one whose output we cannot read."""


@runtime_checkable
class Detector(Protocol):
    """Finds objects in one frame: the first stage of a pipeline, shaped like the others.

    Called with a frame's detections (usually none yet: the stream's name, the capture time
    and the frame's index) and the frame, it returns them with what it sees added. Boxes are
    (x1, y1, x2, y2) in the frame's pixels, clipped to it; classes are mapped to
    :class:`~vision.detections.ObjectClass` by name. A detector keeps no state between
    frames, so the same frame always gives the same detections.
    """

    @property
    def name(self) -> str:
        """Readable, for logs and reports: the backend and the model file."""
        ...

    @property
    def class_names(self) -> Mapping[int, str]:
        """The model's own labels by class index, before mapping to ObjectClass."""
        ...

    def __call__(self, detections: Detections, frame: Frame) -> Detections: ...


def adding(detections: Detections, found: tuple[Detection, ...]) -> Detections:
    """`detections` with what a detector `found` after them."""
    return dataclasses.replace(detections, items=detections.items + found)


def detect_image(detector: Detector, image_bgr: np.ndarray, source: str = "image") -> Detections:
    """What `detector` sees in one BGR image outside any stream (a test, a benchmark): frame 0, at time 0."""
    return detector(Detections(source, 0.0, 0), Frame(image_bgr, 0.0, 0, source, 0.0))


def check_thresholds(conf: float, iou: float, max_det: int) -> None:
    """The options every detector takes, checked the same way."""
    if not 0 <= conf <= 1 or not 0 <= iou <= 1:
        raise ValueError(f"conf and iou are between 0 and 1, got conf={conf}, iou={iou}")
    if max_det < 1:
        raise ValueError(f"max_det must be at least 1, got {max_det}")


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line, for error messages that quote a library."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

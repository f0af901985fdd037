"""The contract of an ultralytics detection export, kept without ultralytics.

What goes in: the frame letterboxed into the model's input (resized keeping its aspect,
padded with grey 114, centred), RGB, scaled to [0, 1], NCHW float. What comes out: either
the YOLOv8/YOLO11 head, (1, 4 + nc, N) rows of centre x, centre y, width, height and one
score per class, which still needs NMS; or an end-to-end head (YOLO26, or an export with
``nms=True``), (1, N, 6) rows of x1, y1, x2, y2, score, class. The rounding below follows
``ultralytics.data.augment.LetterBox`` and ``ultralytics.utils.ops.scale_boxes`` so that a
model gives the same boxes here as under ultralytics.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vision.detectors.boxes import nms

PAD_VALUE = 114
# ultralytics' cap on boxes going into NMS; only a nearly untrained model gets near it.
MAX_NMS_BOXES = 30_000


@dataclass(frozen=True)
class Letterbox:
    """How one frame was fitted into the model input, and how to take boxes back out."""

    image_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    top_px: int
    left_px: int

    @classmethod
    def fit(cls, image_hw: tuple[int, int], input_hw: tuple[int, int], stride: int | None = None) -> Letterbox:
        """Fit into ``input_hw``; with ``stride``, pad only up to a multiple of it (models with a dynamic input)."""
        h, w = image_hw
        r = min(input_hw[0] / h, input_hw[1] / w)
        new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
        dw, dh = input_hw[1] - new_w, input_hw[0] - new_h
        if stride:
            dw, dh = dw % stride, dh % stride
        left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
        top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
        return cls((h, w), (new_h, new_w), (new_h + top + bottom, new_w + left + right), top, left)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The frame resized and padded to ``padded_hw``."""
        if image.shape[:2] != self.resized_hw:
            image = cv2.resize(image, self.resized_hw[::-1], interpolation=cv2.INTER_LINEAR)
        bottom = self.padded_hw[0] - self.resized_hw[0] - self.top_px
        right = self.padded_hw[1] - self.resized_hw[1] - self.left_px
        return cv2.copyMakeBorder(
            image, self.top_px, bottom, self.left_px, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
        )

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 from model-input pixels to frame pixels, clipped to the frame."""
        gain_y = self.resized_hw[0] / self.image_hw[0]
        gain_x = self.resized_hw[1] / self.image_hw[1]
        out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        out[:, [0, 2]] = np.clip((out[:, [0, 2]] - self.left_px) / gain_x, 0, self.image_hw[1])
        out[:, [1, 3]] = np.clip((out[:, [1, 3]] - self.top_px) / gain_y, 0, self.image_hw[0])
        return out


def to_blob(image_bgr: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
    """HWC BGR uint8 to 1CHW RGB in [0, 1]."""
    blob = np.ascontiguousarray(image_bgr.transpose(2, 0, 1)[::-1][None], dtype=np.float32)
    blob /= 255.0
    return blob if dtype == np.float32 else blob.astype(dtype)


class Layout(enum.Enum):
    """The two output heads we read."""

    CLASS_SCORES = "(1, 4 + nc, N): cx, cy, w, h, class scores; needs NMS"
    END_TO_END = "(1, N, 6): x1, y1, x2, y2, score, class"


def layout_of(shape: Sequence[int | str | None], num_classes: int | None, end2end: bool | None) -> Layout | None:
    """Which head an output of this shape is; dimensions may be symbolic (str or None). None: neither."""
    if len(shape) != 3 or not (shape[0] in (1, None) or isinstance(shape[0], str)):
        return None
    channels, last = shape[1], shape[2]
    if end2end is not False and last == 6:
        return Layout.END_TO_END
    wanted = 4 + num_classes if num_classes is not None else None
    if end2end is not True and isinstance(channels, int) and channels > 4 and wanted in (None, channels):
        return Layout.CLASS_SCORES
    return None


@dataclass(frozen=True)
class Decoded:
    """Kept detections in model-input pixels, best first."""

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


def decode(output: np.ndarray, layout: Layout, conf: float, iou: float, max_det: int) -> Decoded:
    """Threshold, NMS (class by class) and cap one frame's raw output, as ultralytics' ``non_max_suppression``."""
    if layout is Layout.END_TO_END:
        rows = output[0]
        rows = rows[rows[:, 4] > conf][:max_det]
        return Decoded(rows[:, :4].astype(np.float64), rows[:, 4].astype(np.float64), rows[:, 5].astype(np.int64))
    pred = output[0]
    class_scores = pred[4:]
    class_ids = class_scores.argmax(axis=0)
    scores = class_scores[class_ids, np.arange(pred.shape[1])]
    keep = np.flatnonzero(scores > conf)
    if len(keep) > MAX_NMS_BOXES:
        keep = keep[np.argsort(-scores[keep], kind="stable")[:MAX_NMS_BOXES]]
    cx, cy, w, h = pred[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kept = nms(boxes, scores[keep], iou, class_ids[keep], max_kept=max_det)
    return Decoded(boxes[kept].astype(np.float64), scores[keep][kept].astype(np.float64), class_ids[keep][kept])


def parse_names(value: str | None) -> dict[int, str] | None:
    """ultralytics writes ``names`` as a Python dict literal, ``{0: 'vessel', ...}``; a list is accepted too."""
    parsed = _literal(value)
    if isinstance(parsed, Mapping):
        return {int(k): str(v) for k, v in parsed.items()}
    if isinstance(parsed, list | tuple):
        return {i: str(v) for i, v in enumerate(parsed)}
    return None


def parse_imgsz(value: str | None) -> tuple[int, int] | None:
    """``imgsz`` as (height, width): ``[320, 320]``, ``[320]`` or ``320``."""
    parsed = _literal(value)
    if isinstance(parsed, int):
        return parsed, parsed
    if isinstance(parsed, list | tuple) and 1 <= len(parsed) <= 2 and all(isinstance(v, int) for v in parsed):
        return int(parsed[0]), int(parsed[-1])
    return None


def parse_bool(value: str | None) -> bool | None:
    parsed = _literal(value)
    return parsed if isinstance(parsed, bool) else None


def _literal(value: str | None) -> object:
    if value is None:
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None

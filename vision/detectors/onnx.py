"""Detector on ONNX Runtime alone, for companion computers that carry neither torch nor ultralytics.

It runs a detection model exported by ultralytics (``yolo export format=onnx``): the input
size, stride and class names come from the metadata the exporter writes into the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
import onnxruntime as ort

from vision.detections import Detection, Detections, ObjectClass
from vision.detectors.base import DetectorError, adding, check_thresholds, first_line
from vision.detectors.export_format import (
    Layout,
    Letterbox,
    decode,
    layout_of,
    parse_bool,
    parse_imgsz,
    parse_names,
    to_blob,
)
from vision.frames import Frame


class OnnxDetector:
    """An ultralytics YOLO detection export (YOLOv8, YOLO11, YOLO26) run on ONNX Runtime.

    ``conf``: lowest score kept; ``iou``: overlap above which NMS drops the weaker of two
    boxes of one class; ``threads``: ONNX Runtime's intra-op threads, all cores this
    process may use when None. ``providers`` are ONNX Runtime execution providers in order
    of preference (CPU unless told otherwise).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        check_thresholds(conf, iou, max_det)
        self.path = Path(path)
        self.conf, self.iou, self.max_det = conf, iou, max_det
        source = str(self.path)
        if not self.path.is_file():
            raise DetectorError(source, "no such model file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads if threads else _usable_cores()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(source, options, providers=list(providers))
        except Exception as exc:  # ONNX Runtime raises its own untyped errors for unreadable files
            raise DetectorError(source, f"not an ONNX model ONNX Runtime can load ({first_line(exc)})") from exc

        meta = self._session.get_modelmeta().custom_metadata_map
        task = meta.get("task", "detect")
        if task != "detect":
            raise DetectorError(source, f"a {task!r} model; only detection models are supported")
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise DetectorError(source, f"expected one image input (1, 3, H, W), got {[i.shape for i in inputs]}")
        self._input_name = inputs[0].name
        self._input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        batch, channels, height, width = inputs[0].shape
        many_images = isinstance(batch, int) and batch != 1
        if many_images or channels != 3:
            raise DetectorError(source, f"input shape {inputs[0].shape}: expected one 3-channel image, (1, 3, H, W)")
        # A dynamic input takes any multiple of the stride, and ultralytics then pads only up
        # to one; a fixed input always takes the exported size.
        self._dynamic = not (isinstance(height, int) and isinstance(width, int))
        self._input_hw = parse_imgsz(meta.get("imgsz")) if self._dynamic else (height, width)
        if self._input_hw is None:
            raise DetectorError(source, "dynamic input size and no 'imgsz' in the metadata; export it with imgsz")
        stride = _literal_int(meta.get("stride"))
        self._stride = stride if stride and stride > 0 else 32

        names = parse_names(meta.get("names"))
        self._end2end = parse_bool(meta.get("end2end"))
        self._output_name = outputs[0].name
        shape = outputs[0].shape
        # A dynamic export names its output dimensions instead of sizing them; what they
        # are is only known from the first frame, and checked on every one.
        sized = len(shape) != 3 or all(isinstance(d, int) for d in shape[1:])
        self._layout = layout_of(shape, None if names is None else len(names), self._end2end) if sized else None
        if sized and self._layout is None:
            raise DetectorError(source, _not_a_head(shape, names))
        if names is None:
            nc = shape[1] - 4 if self._layout is Layout.CLASS_SCORES else 0
            names = {i: str(i) for i in range(nc)}
        self._names: Mapping[int, str] = MappingProxyType(names)
        self._classes = {i: ObjectClass.from_name(label) for i, label in names.items()}

    @property
    def name(self) -> str:
        h, w = self._input_hw
        return f"onnxruntime {self.path.name} {w}x{h}"

    @property
    def class_names(self) -> Mapping[int, str]:
        return self._names

    @property
    def input_hw(self) -> tuple[int, int]:
        return self._input_hw

    def blob(self, image_bgr: np.ndarray) -> np.ndarray:
        """The tensor detection feeds the network for this image (letterboxed, RGB, NCHW)."""
        image = _as_bgr(image_bgr)
        box = Letterbox.fit(image.shape[:2], self._input_hw, self._stride if self._dynamic else None)
        return to_blob(box.apply(image), self._input_dtype)

    def forward(self, blob: np.ndarray) -> np.ndarray:
        """The network alone on a prepared tensor: what benchmarks compare the pipeline with."""
        (output,) = self._session.run([self._output_name], {self._input_name: blob})
        return output

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        return adding(detections, self._detect(frame.image))

    def _detect(self, image_bgr: np.ndarray) -> tuple[Detection, ...]:
        image = _as_bgr(image_bgr)
        box = Letterbox.fit(image.shape[:2], self._input_hw, self._stride if self._dynamic else None)
        blob = to_blob(box.apply(image), self._input_dtype)
        output = self.forward(blob)
        layout = layout_of(output.shape, len(self._names) or None, self._end2end)
        if layout is None or (self._layout is not None and layout is not self._layout):
            raise DetectorError(str(self.path), _not_a_head(list(output.shape), self._names or None))
        found = decode(output.astype(np.float32, copy=False), layout, self.conf, self.iou, self.max_det)
        boxes = box.to_image(found.boxes_xyxy)
        return tuple(
            Detection(
                object_class=self._classes.get(int(c), ObjectClass.OTHER),
                confidence=float(s),
                box_px=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            )
            for b, s, c in zip(boxes, found.scores, found.class_ids, strict=True)
        )


def _not_a_head(shape: Sequence[int | str | None], names: Mapping[int, str] | None) -> str:
    classes = "" if names is None else f", with nc = {len(names)} classes"
    return (
        f"output shape {list(shape)} is not a YOLO detection head: expected "
        f"{Layout.CLASS_SCORES.value} or {Layout.END_TO_END.value}{classes}"
    )


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0:
        return np.ascontiguousarray(image)
    raise ValueError(f"expected an H×W×3 BGR image, got shape {image.shape}")


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def _literal_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

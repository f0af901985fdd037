"""Detector on ultralytics: any .pt or .onnx the user has, on CPU or GPU.

The one module of the project that imports ultralytics, and only when a detector is made,
so that ``import vision.detectors`` never pulls in torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vision.detections import Detections
from vision.detectors.base import DetectorError, adding, check_thresholds, first_line
from vision.frames import Frame


class UltralyticsDetector:
    """``YOLO(path).predict`` behind the Detector protocol.

    ``imgsz`` None lets ultralytics choose: the size a fixed ONNX file was exported at, the
    size a .pt was trained at, or its default of 640 for a dynamic ONNX file. ``device`` is
    ultralytics' ("cpu", "0", "cuda:0", "mps").
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        imgsz: int | tuple[int, int] | None = None,
        device: str = "cpu",
        max_det: int = 300,
    ) -> None:
        check_thresholds(conf, iou, max_det)
        self.path = Path(path)
        source = str(self.path)
        # Checked here because ultralytics would download a missing file that happens to be
        # named like one of its released weights; a drone has no business fetching models.
        if not self.path.is_file():
            raise DetectorError(source, "no such model file")
        # Without this ultralytics probes the network (DNS) on import; set before importing.
        os.environ.setdefault("YOLO_OFFLINE", "1")
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise DetectorError(
                source, "needs the ultralytics package; or export the model to ONNX and use the onnx backend"
            ) from exc
        try:
            self._model = YOLO(source) if self.path.suffix == ".pt" else YOLO(source, task="detect")
            names = dict(self._model.names)
        except Exception as exc:  # torch.load and the ONNX backend raise whatever they raise
            raise DetectorError(source, f"ultralytics cannot load it ({first_line(exc)})") from exc
        if self._model.task != "detect":
            raise DetectorError(source, f"a {self._model.task!r} model; only detection models are supported")
        self._names: Mapping[int, str] = MappingProxyType({int(k): str(v) for k, v in names.items()})
        self._predict_args: dict[str, Any] = {
            "conf": conf,
            "iou": iou,
            "max_det": max_det,
            "device": device,
            "verbose": False,
        }
        if imgsz is not None:
            self._predict_args["imgsz"] = imgsz

    @property
    def name(self) -> str:
        return f"ultralytics {self.path.name}"

    @property
    def class_names(self) -> Mapping[int, str]:
        return self._names

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        results = self._model.predict(frame.image, **self._predict_args)
        found = Detections.from_ultralytics(
            results, detections.source, detections.frame_time_s, detections.frame_index, names=self._names
        )
        return adding(detections, found.items)

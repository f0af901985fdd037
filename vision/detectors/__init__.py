"""Detectors: one video frame in, its detections out.

``load_detector`` picks the backend from the model file: ONNX Runtime for ``.onnx`` (the
onboard path, no torch), ultralytics for ``.pt``. Backends are imported only when asked
for, so importing this package needs neither onnxruntime nor ultralytics.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from vision.detectors.base import Detector, DetectorError
from vision.detectors.tiling import TiledDetector

__all__ = ["DEFAULT_MODEL", "Backend", "Detector", "DetectorError", "TiledDetector", "load_detector"]

# Trained on the synthetic world of sitl by ``python -m sitl.synthetic.train`` and shipped with the package.
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "borderwatch-synthetic.onnx"


class Backend(enum.StrEnum):
    AUTO = "auto"
    ONNX = "onnx"
    ULTRALYTICS = "ultralytics"


def load_detector(
    path: str | os.PathLike[str] | None = None,
    backend: Backend | str = Backend.AUTO,
    *,
    conf: float = 0.25,
    iou: float = 0.45,
    tile: bool = False,
) -> Detector:
    """The detector for a model file; None is the bundled model, :data:`DEFAULT_MODEL`.

    ``backend`` AUTO runs ``.onnx`` on ONNX Runtime and ``.pt`` on ultralytics; ULTRALYTICS
    also runs ``.onnx``. ``tile`` wraps it in a :class:`TiledDetector` of 640 px tiles, for
    small objects in large frames.
    """
    backend = Backend(backend)
    if path is None:
        if not DEFAULT_MODEL.is_file():
            raise DetectorError(
                str(DEFAULT_MODEL),
                "the bundled detection model is missing; train it again with `python -m sitl.synthetic.train`, "
                "or pass the path of a model",
            )
        path = DEFAULT_MODEL
    model = Path(path)
    suffix = model.suffix.lower()
    if backend is Backend.AUTO:
        backend = {".onnx": Backend.ONNX, ".pt": Backend.ULTRALYTICS}.get(suffix, Backend.AUTO)
        if backend is Backend.AUTO:
            raise DetectorError(str(model), "cannot tell the backend from the suffix: expected .onnx or .pt")
    detector: Detector
    if backend is Backend.ONNX:
        if suffix == ".pt":
            raise DetectorError(
                str(model), "ONNX Runtime cannot run a PyTorch .pt; export it with `yolo export format=onnx`"
            )
        try:
            from vision.detectors.onnx import OnnxDetector
        except ImportError as exc:
            raise DetectorError(str(model), f"the onnx backend needs onnxruntime and opencv ({exc})") from exc
        detector = OnnxDetector(model, conf=conf, iou=iou)
    else:
        from vision.detectors.yolo import UltralyticsDetector

        detector = UltralyticsDetector(model, conf=conf, iou=iou)
    return TiledDetector(detector) if tile else detector

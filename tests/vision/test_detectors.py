from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import nullcontext as does_not_raise
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import vision.detectors
from missions.errors import InputError
from vision.detections import ObjectClass
from vision.detectors import Backend, Detector, DetectorError, TiledDetector, load_detector
from vision.detectors.base import detect_image
from vision.detectors.boxes import nms
from vision.detectors.export_format import Layout, Letterbox, decode

VESSEL, VEHICLE, PERSON, OTHER = ObjectClass.VESSEL, ObjectClass.VEHICLE, ObjectClass.PERSON, ObjectClass.OTHER
NAMES = {0: "vessel", 1: "vehicle", 2: "person"}
REPO = Path(__file__).resolve().parents[2]
# Never fetch weights or probe the network; ultralytics keeps its settings inside the project.
YOLO_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "YOLO_CONFIG_DIR": str(REPO / ".ultralytics")}


def noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def boxes_of(found):
    return np.array([d.box_px for d in found], dtype=np.float64).reshape(-1, 4)


def assert_same_detections(a, b, tol_px=1.0, tol_conf=1e-3):
    """Same objects, classes and boxes within ``tol_px``, whatever the order of equal scores."""
    assert len(a) == len(b)
    unmatched = list(b)
    for d in a:
        candidates = [e for e in unmatched if e.object_class is d.object_class]
        assert candidates, f"no {d.object_class} left to match {d}"
        best = min(candidates, key=lambda e: np.abs(np.subtract(e.box_px, d.box_px)).max())
        assert np.abs(np.subtract(best.box_px, d.box_px)).max() <= tol_px, (d, best)
        assert abs(best.confidence - d.confidence) <= tol_conf
        unmatched.remove(best)


# --- Tiny YOLO models, built from yaml (no weights are downloaded) ---------------------------


def _build_tiny_yolo(folder: Path, family: str) -> Path:
    """A YOLO with our three classes, random weights made to give varied, deterministic boxes.

    Freshly initialised weights put out near-constant scores (all boxes tie); letting batch
    norm measure a few random images and turning down the class logits gives a spread of
    scores, so that thresholds and NMS have something to decide.
    """
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import ROOT, YAML

    cfg = YAML.load(ROOT / "cfg" / "models" / family / f"yolo{family}.yaml")
    cfg["nc"] = len(NAMES)
    yaml_path = folder / f"yolo{family}n.yaml"  # the 'n' picks the nano scale
    YAML.save(yaml_path, cfg)
    torch.manual_seed(0)
    model = YOLO(str(yaml_path))
    net = model.model
    net.names = dict(NAMES)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    net.train()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for _ in range(2):
            net(torch.rand(4, 3, 320, 320, generator=generator))
        net.eval()
        for branch in [*net.model[-1].cv3, *getattr(net.model[-1], "one2one_cv3", [])]:
            branch[-1].weight.mul_(0.15)
            branch[-1].bias.fill_(-2.5)
    pt = folder / f"tiny-{family}.pt"
    model.save(pt)
    return pt


def _export(pt: Path, folder: Path, **options) -> Path:
    from ultralytics import YOLO

    folder.mkdir(parents=True, exist_ok=True)
    copy = Path(shutil.copy(pt, folder / pt.name))
    # The export is made from the saved .pt (half precision), so that it holds the same weights.
    return Path(YOLO(str(copy)).export(format="onnx", imgsz=320, simplify=False, verbose=False, **options))


@pytest.fixture(scope="session")
def yolo_env():
    with pytest.MonkeyPatch.context() as mp:
        for key, value in YOLO_ENV.items():
            mp.setenv(key, value)
        pytest.importorskip("onnxruntime")
        pytest.importorskip("ultralytics")
        yield


@pytest.fixture(scope="session")
def tiny_yolo(yolo_env, tmp_path_factory):
    """YOLO11n, 3 classes: the .pt and its ONNX export at 320 (about 1 s after importing ultralytics)."""
    folder = tmp_path_factory.mktemp("tiny-yolo")
    pt = _build_tiny_yolo(folder, "11")
    return SimpleNamespace(pt=pt, onnx=_export(pt, folder / "fixed"))


@pytest.fixture(scope="session")
def tiny_yolo_dynamic(tiny_yolo):
    return _export(tiny_yolo.pt, tiny_yolo.pt.parent / "dynamic", dynamic=True)


@pytest.fixture(scope="session")
def tiny_yolo26_end_to_end(yolo_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-yolo26")
    return _export(_build_tiny_yolo(folder, "26"), folder / "e2e", nms=False)


PARITY_IMAGES = [(720, 1280), (480, 640), (333, 500), (1000, 300), (320, 320)]
SQUARE_IMAGES = [(320, 320), (640, 640), (200, 200)]
# These random weights score every box that survives NMS at 0.056 to 0.8: 0.05 keeps them all, none close to it.
LOW_CONF = 0.05


@pytest.mark.parametrize("hw", PARITY_IMAGES, ids=lambda hw: f"{hw[1]}x{hw[0]}")
def test_onnx_detector_matches_ultralytics_on_the_same_onnx(tiny_yolo, hw):
    from vision.detectors.onnx import OnnxDetector
    from vision.detectors.yolo import UltralyticsDetector

    image = noise(*hw, seed=hw[0])
    ours = detect_image(OnnxDetector(tiny_yolo.onnx, conf=LOW_CONF), image)
    theirs = detect_image(UltralyticsDetector(tiny_yolo.onnx, conf=LOW_CONF), image)

    assert len(ours) >= 5
    assert {d.object_class for d in ours} <= {VESSEL, VEHICLE, PERSON}
    assert_same_detections(ours, theirs)
    boxes = boxes_of(ours)
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= hw[1]).all() and (boxes[:, [1, 3]] <= hw[0]).all()


@pytest.mark.parametrize("hw", SQUARE_IMAGES, ids=lambda hw: f"{hw[1]}x{hw[0]}")
def test_onnx_export_matches_the_pt_it_came_from(tiny_yolo, hw):
    # Square frames only: on a .pt ultralytics pads to a multiple of the stride instead of to
    # the square input, which changes what random weights see.
    from vision.detectors.onnx import OnnxDetector
    from vision.detectors.yolo import UltralyticsDetector

    image = noise(*hw, seed=7)
    ours = detect_image(OnnxDetector(tiny_yolo.onnx, conf=LOW_CONF), image)
    theirs = detect_image(UltralyticsDetector(tiny_yolo.pt, conf=LOW_CONF, imgsz=320), image)

    assert len(ours) >= 5
    assert_same_detections(ours, theirs)


def test_dynamic_export_pads_to_the_stride_like_ultralytics(tiny_yolo_dynamic):
    from vision.detectors.onnx import OnnxDetector
    from vision.detectors.yolo import UltralyticsDetector

    # ultralytics runs a dynamic model at its own default size (640) unless told; we take the exported size.
    image = noise(720, 1280, seed=3)
    ours = detect_image(OnnxDetector(tiny_yolo_dynamic, conf=LOW_CONF), image)
    theirs = detect_image(UltralyticsDetector(tiny_yolo_dynamic, conf=LOW_CONF, imgsz=320), image)

    assert len(ours) >= 5
    assert_same_detections(ours, theirs)


def test_end_to_end_yolo26_export_matches_ultralytics(tiny_yolo26_end_to_end):
    from vision.detectors.onnx import OnnxDetector
    from vision.detectors.yolo import UltralyticsDetector

    image = noise(720, 1280, seed=4)
    detector = OnnxDetector(tiny_yolo26_end_to_end, conf=0.01)
    ours = detect_image(detector, image)
    theirs = detect_image(UltralyticsDetector(tiny_yolo26_end_to_end, conf=0.01), image)

    assert detector._layout is Layout.END_TO_END
    assert len(ours) >= 5
    assert_same_detections(ours, theirs)


def test_detectors_read_names_and_size_from_the_model(tiny_yolo):
    from vision.detectors.onnx import OnnxDetector
    from vision.detectors.yolo import UltralyticsDetector

    onnx = OnnxDetector(tiny_yolo.onnx, threads=1)
    ultra = UltralyticsDetector(tiny_yolo.pt)

    assert dict(onnx.class_names) == dict(ultra.class_names) == NAMES
    assert onnx.input_hw == (320, 320)
    assert tiny_yolo.onnx.name in onnx.name and tiny_yolo.pt.name in ultra.name
    assert isinstance(onnx, Detector) and isinstance(ultra, Detector)
    assert detect_image(onnx, noise(720, 1280)) == detect_image(onnx, noise(720, 1280))


def test_onnx_detector_runs_without_torch_or_ultralytics(tiny_yolo):
    from vision.detectors.onnx import OnnxDetector

    image_seed, conf = 11, LOW_CONF
    expected = len(detect_image(OnnxDetector(tiny_yolo.onnx, conf=conf), noise(720, 1280, image_seed)))
    script = f"""
import sys
sys.modules["torch"] = None
sys.modules["ultralytics"] = None
import numpy as np
import vision.detectors
from vision.detectors import load_detector
from vision.detectors.base import detect_image
from vision.detectors.onnx import OnnxDetector
image = np.random.default_rng({image_seed}).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
detector = load_detector(sys.argv[1], conf={conf})
assert isinstance(detector, OnnxDetector), detector
print(len(detect_image(detector, image)))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny_yolo.onnx)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) == expected


# --- The ONNX path on hand-built outputs --------------------------------------------------------


def constant_model(path: Path, output: np.ndarray, meta: dict[str, str] | None = None, input_hw=(320, 320)) -> Path:
    """An ONNX model that takes an image and always answers ``output``, with ultralytics-style metadata."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["raw", "nothing"], ["output0"]),
        ],
        "constant",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        [numpy_helper.from_array(output.astype(np.float32), "raw"), numpy_helper.from_array(np.float32(0), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    imgsz = list(input_hw) if all(isinstance(v, int) for v in input_hw) else [320, 320]
    metadata = {"task": "detect", "stride": "32", "imgsz": repr(imgsz), "names": repr(NAMES), **(meta or {})}
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    return path


def head_output(*objects, nc=3, anchors=64):
    """(1, 4 + nc, anchors) with ``objects`` as (cx, cy, w, h, class, score) and every other anchor empty."""
    out = np.zeros((1, 4 + nc, anchors), dtype=np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(objects):
        out[0, :4, i] = cx, cy, w, h
        out[0, 4 + cls, i] = score
    return out


@pytest.fixture
def onnx_detector(tmp_path):
    pytest.importorskip("onnxruntime")
    from vision.detectors.onnx import OnnxDetector

    def make(output, meta=None, input_hw=(320, 320), **options):
        return OnnxDetector(constant_model(tmp_path / "m.onnx", output, meta, input_hw), **options)

    return make


@pytest.mark.parametrize(
    ("hw", "input_hw", "letterboxed_xyxy", "expected_xyxy"),
    [
        # 1280×720 into 320: scale 1/4, 70 px of grey above and below.
        ((720, 1280), (320, 320), (120, 140, 200, 180), (480, 280, 800, 440)),
        # Portrait 300×1000: scale 0.32, 112 px of grey left and right.
        ((1000, 300), (320, 320), (122, 32, 202, 96), (31.25, 100, 281.25, 300)),
        # Half in the grey band: clipped to the frame.
        ((720, 1280), (320, 320), (-10, 40, 90, 80), (0, 0, 360, 40)),
        # A dynamic input: padded only to a multiple of 32 (192 high, 6 px on top).
        ((720, 1280), ("height", "width"), (120, 140, 200, 180), (480, 536, 800, 696)),
        # Exported at a rectangular 320×192: the same 6 px on top.
        ((720, 1280), (192, 320), (120, 140, 200, 180), (480, 536, 800, 696)),
    ],
    ids=["landscape", "portrait", "clipped", "dynamic-input", "rectangular-input"],
)
def test_box_in_letterboxed_input_maps_back_to_the_frame(onnx_detector, hw, input_hw, letterboxed_xyxy, expected_xyxy):
    x1, y1, x2, y2 = letterboxed_xyxy
    detector = onnx_detector(head_output(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 1, 0.9)), input_hw=input_hw)

    (found,) = detect_image(detector, np.zeros((*hw, 3), np.uint8))

    assert found.object_class is VEHICLE and found.confidence == pytest.approx(0.9)
    assert found.box_px == pytest.approx(expected_xyxy, abs=1e-3)


@pytest.mark.parametrize(
    ("objects", "conf", "expected"),
    [
        # Two vessels overlapping (IoU 0.82): the weaker goes.
        ([(100, 100, 50, 50, 0, 0.9), (102, 102, 50, 50, 0, 0.8)], 0.25, [(VESSEL, 0.9)]),
        # The same boxes, a vessel and a vehicle: both stay.
        ([(100, 100, 50, 50, 0, 0.9), (102, 102, 50, 50, 1, 0.8)], 0.25, [(VESSEL, 0.9), (VEHICLE, 0.8)]),
        # Two vessels side by side (IoU 0.14): both stay.
        ([(100, 100, 50, 50, 0, 0.9), (140, 100, 50, 50, 0, 0.8)], 0.25, [(VESSEL, 0.9), (VESSEL, 0.8)]),
        # Below the threshold, and at it: dropped.
        ([(100, 100, 50, 50, 2, 0.2), (200, 200, 20, 20, 2, 0.25), (50, 50, 9, 9, 2, 0.3)], 0.25, [(PERSON, 0.3)]),
        # A class the model names but we do not know: OTHER.
        ([(100, 100, 50, 50, 3, 0.9)], 0.25, [(OTHER, 0.9)]),
    ],
    ids=["same-class-collapse", "different-classes", "side-by-side", "threshold", "unknown-label"],
)
def test_scores_and_nms(onnx_detector, objects, conf, expected):
    nc = 4 if any(o[4] == 3 for o in objects) else 3
    names = {**NAMES, 3: "lighthouse"} if nc == 4 else NAMES
    detector = onnx_detector(head_output(*objects, nc=nc), meta={"names": repr(names)}, conf=conf)

    found = detect_image(detector, np.zeros((320, 320, 3), np.uint8))

    assert [(d.object_class, round(d.confidence, 6)) for d in found] == [(c, s) for c, s in expected]


def test_max_det_keeps_the_best(onnx_detector):
    objects = [(20 + 40 * i, 100, 30, 30, 0, 0.3 + 0.1 * i) for i in range(6)]
    detector = onnx_detector(head_output(*objects), max_det=2)

    found = detect_image(detector, np.zeros((320, 320, 3), np.uint8))

    assert [round(d.confidence, 6) for d in found] == [0.8, 0.7]


def test_end_to_end_output_is_thresholded_but_not_suppressed(onnx_detector):
    rows = np.zeros((1, 300, 6), dtype=np.float32)
    rows[0, 0] = 10, 70, 50, 110, 0.9, 0  # already suppressed by the model: kept as they are
    rows[0, 1] = 12, 72, 52, 112, 0.8, 0
    rows[0, 2] = 100, 100, 140, 140, 0.1, 2
    detector = onnx_detector(rows, meta={"end2end": "True"})

    found = detect_image(detector, np.zeros((720, 1280, 3), np.uint8))

    assert [d.object_class for d in found] == [VESSEL, VESSEL]
    assert found.items[0].box_px == pytest.approx((40, 0, 200, 160))


@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(iou_threshold):
    torchvision = pytest.importorskip("torchvision")
    import torch

    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (300, 2))], axis=1)
    scores = rng.uniform(0, 1, 300)
    classes = rng.integers(0, 3, 300)

    ours = nms(boxes, scores, iou_threshold, classes)
    offset = torch.from_numpy(boxes + classes[:, None] * 1000.0)
    theirs = torchvision.ops.nms(offset, torch.from_numpy(scores), iou_threshold).numpy()

    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("hw", [(720, 1280), (1080, 1920), (333, 500), (1000, 300), (320, 320), (7, 3000)])
@pytest.mark.parametrize("stride", [None, 32])
def test_letterbox_is_ultralytics_letterbox(yolo_env, hw, stride):
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes

    image = noise(*hw)
    box = Letterbox.fit(hw, (320, 320), stride)
    ours = box.apply(image)
    theirs = LetterBox((320, 320), auto=stride is not None, stride=stride or 32)(image=image)
    assert np.array_equal(ours, theirs)

    letterboxed = np.array([[10.0, 20.0, 200.0, 150.0], [0.0, 0.0, 320.0, 320.0]])
    expected = scale_boxes(ours.shape[:2], letterboxed.copy(), hw)
    assert box.to_image(letterboxed) == pytest.approx(expected, abs=1e-4)


def test_decode_of_raw_head_gives_input_pixels():
    out = head_output((160, 160, 80, 40, 2, 0.7))
    found = decode(out, Layout.CLASS_SCORES, conf=0.25, iou=0.45, max_det=300)
    assert found.boxes_xyxy.tolist() == [[120, 140, 200, 180]]
    assert found.class_ids.tolist() == [2]


# --- Errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "meta", "match"),
    [
        (np.zeros((1, 10, 64)), None, r"output shape \[1, 10, 64\] is not a YOLO detection head.*nc = 3"),
        (np.zeros((1, 7, 8, 8)), None, r"output shape .* is not a YOLO detection head"),
        (np.zeros((1, 7, 64)), {"task": "segment"}, "a 'segment' model"),
    ],
    ids=["wrong-class-count", "wrong-rank", "not-detection"],
)
def test_onnx_models_we_cannot_read_are_named(onnx_detector, tmp_path, output, meta, match):
    with pytest.raises(DetectorError, match=match) as raised:
        onnx_detector(output, meta)
    assert str(tmp_path / "m.onnx") in str(raised.value)


@pytest.mark.parametrize("backend", ["onnx", "ultralytics"])
def test_missing_and_broken_model_files(tmp_path, backend):
    pytest.importorskip("onnxruntime" if backend == "onnx" else "ultralytics")
    suffix = ".onnx" if backend == "onnx" else ".pt"
    missing = tmp_path / f"nowhere{suffix}"
    with pytest.raises(DetectorError, match="no such model file") as raised:
        load_detector(missing, backend)
    assert str(missing) in str(raised.value)

    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(b"this is a JPEG, honest\n" * 20)
    with (
        pytest.MonkeyPatch.context() as mp,
        pytest.raises(DetectorError, match=r"not an ONNX model|cannot load") as raised,
    ):
        for key, value in YOLO_ENV.items():
            mp.setenv(key, value)
        load_detector(broken, backend)
    assert str(broken) in str(raised.value)
    assert isinstance(raised.value, InputError)


def test_onnx_detector_checks_its_options(tiny_yolo):
    from vision.detectors.onnx import OnnxDetector

    with pytest.raises(ValueError, match="conf and iou"):
        OnnxDetector(tiny_yolo.onnx, conf=1.5)
    with pytest.raises(ValueError, match="H×W×3"):
        detect_image(OnnxDetector(tiny_yolo.onnx), np.zeros((10, 10, 5), np.uint8))


# --- load_detector ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "backend", "expected", "outcome"),
    [
        ("onnx", "auto", "OnnxDetector", does_not_raise()),
        ("onnx", Backend.ULTRALYTICS, "UltralyticsDetector", does_not_raise()),
        ("pt", "auto", "UltralyticsDetector", does_not_raise()),
        ("pt", "onnx", None, pytest.raises(DetectorError, match=r"ONNX Runtime cannot run a PyTorch \.pt")),
        ("pt", "tensorflow", None, pytest.raises(ValueError, match="tensorflow")),
    ],
)
def test_load_detector_picks_the_backend(tiny_yolo, which, backend, expected, outcome):
    with outcome:
        detector = load_detector(getattr(tiny_yolo, which), backend)
        assert type(detector).__name__ == expected


def test_load_detector_needs_a_known_suffix(tmp_path):
    weights = tmp_path / "model.engine"
    weights.write_bytes(b"\0")
    with pytest.raises(DetectorError, match=r"model\.engine.*expected \.onnx or \.pt"):
        load_detector(weights)


def test_default_model_missing_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(vision.detectors, "DEFAULT_MODEL", tmp_path / "borderwatch-synthetic.onnx")
    with pytest.raises(DetectorError, match=r"borderwatch-synthetic\.onnx.*python -m sitl\.synthetic\.train"):
        load_detector()


def test_default_model_is_used_and_tiling_wraps_it(monkeypatch, tiny_yolo):
    monkeypatch.setattr(vision.detectors, "DEFAULT_MODEL", tiny_yolo.onnx)
    assert vision.detectors.DEFAULT_MODEL.name == tiny_yolo.onnx.name
    tiled = load_detector(tile=True, conf=LOW_CONF)

    assert isinstance(tiled, TiledDetector) and tiled.inner.path == tiny_yolo.onnx
    found = detect_image(tiled, noise(1080, 1920, seed=2))
    boxes = boxes_of(found)
    assert len(found) > 0
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 1920).all() and (boxes[:, [1, 3]] <= 1080).all()


def test_shipped_default_model_path():
    assert vision.detectors.DEFAULT_MODEL == REPO / "vision" / "models" / "borderwatch-synthetic.onnx"

"""Tiling: a frame cut into overlapping tiles for a detector, objects cut by tile edges merged back whole."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vision.detections import Detection, ObjectClass
from vision.detectors import TiledDetector
from vision.detectors.base import detect_image
from vision.detectors.tiling import tiles

NAMES = {0: "vessel", 1: "vehicle", 2: "person"}
VESSEL, VEHICLE, PERSON = ObjectClass.VESSEL, ObjectClass.VEHICLE, ObjectClass.PERSON


class ColourDetector:
    """'Detects' solid rectangles of known colours in whatever slice it is given, as a real detector would.

    Like a real one it misses objects that shrink below ``min_px`` once the image is
    letterboxed into ``input_px``, and it is less sure of objects cut by the image edge.
    """

    name = "colours"
    class_names = NAMES

    def __init__(self, colours, input_px=640, min_px=4, cut_confidence=0.6):
        self.colours = colours
        self.input_px = input_px
        self.min_px = min_px
        self.cut_confidence = cut_confidence
        self.calls: list[tuple[int, int]] = []

    def __call__(self, detections, frame):
        image_bgr = frame.image
        h, w = image_bgr.shape[:2]
        self.calls.append((h, w))
        scale = min(1.0, self.input_px / max(h, w))
        found = []
        for colour, object_class in self.colours.items():
            ys, xs = np.nonzero(np.all(image_bgr == colour, axis=2))
            if len(xs) == 0:
                continue
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            if min(x2 - x1, y2 - y1) * scale < self.min_px:
                continue
            cut = x1 == 0 or y1 == 0 or x2 == w or y2 == h
            confidence = self.cut_confidence if cut else 0.9
            found.append(Detection(object_class, confidence, (float(x1), float(y1), float(x2), float(y2))))
        return replace(detections, items=detections.items + tuple(found))


def scene(*objects, hw=(1080, 1920)):
    """A dark frame with ``objects`` as (colour, (x1, y1, x2, y2)) painted on it."""
    image = np.full((*hw, 3), 20, np.uint8)
    for colour, (x1, y1, x2, y2) in objects:
        image[y1:y2, x1:x2] = colour
    return image


RED, GREEN, BLUE, YELLOW = (0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)
# With 640 px tiles and 20 % overlap a 1920×1080 frame is 4 × 2 tiles: x from 0, 427, 853, 1280; y from 0, 440.


@pytest.mark.parametrize("full_frame", [True, False])
@pytest.mark.parametrize("cut_confidence", [0.6, 0.95], ids=["cut-scores-lower", "cut-scores-higher"])
@pytest.mark.parametrize(
    "box",
    [
        (600, 300, 700, 340),  # across the first vertical tile edge (x = 640)
        (300, 500, 1500, 600),  # a long ship across four tiles
        (1200, 560, 1300, 700),  # across a corner: tile edges x = 1280 and y = 640
    ],
    ids=["straddling", "spanning", "corner"],
)
def test_object_cut_by_tile_edges_comes_out_once_whole(full_frame, cut_confidence, box):
    inner = ColourDetector({RED: VESSEL}, cut_confidence=cut_confidence)
    detector = TiledDetector(inner, tile_px=640, overlap=0.2, full_frame=full_frame)

    found = detect_image(detector, scene((RED, box)))

    assert [(d.object_class, d.box_px) for d in found] == [(VESSEL, box)]


def test_small_object_is_found_only_by_tiles():
    image = scene((GREEN, (1500, 900, 1506, 906)), (RED, (100, 100, 400, 200)))
    inner = ColourDetector({GREEN: PERSON, RED: VESSEL})

    whole = detect_image(inner, image)
    found = detect_image(TiledDetector(inner, tile_px=640, overlap=0.2), image)

    assert [d.object_class for d in whole] == [VESSEL]
    assert sorted((d.object_class.value, d.box_px) for d in found) == [
        ("person", (1500, 900, 1506, 906)),
        ("vessel", (100, 100, 400, 200)),
    ]
    assert inner.calls[1:] == [(1080, 1920)] + [(640, 640)] * 8


def test_neighbours_are_not_merged():
    boats = [(RED, (560, 300, 630, 340)), (BLUE, (636, 300, 720, 340))]  # two vessels moored 6 px apart, by a tile edge
    truck = (YELLOW, (600, 320, 660, 360))  # a vehicle on the quay, overlapping both
    detector = TiledDetector(ColourDetector({RED: VESSEL, BLUE: VESSEL, YELLOW: VEHICLE}), full_frame=False)

    found = detect_image(detector, scene(*boats, truck))

    assert sorted((d.object_class.value, d.box_px) for d in found) == [
        ("vehicle", truck[1]),
        ("vessel", boats[0][1]),
        ("vessel", boats[1][1]),
    ]


def test_frame_within_one_tile_is_detected_once_as_is():
    inner = ColourDetector({RED: VESSEL})
    image = scene((RED, (10, 10, 50, 50)), hw=(480, 640))

    found = detect_image(TiledDetector(inner, tile_px=640), image)

    assert inner.calls == [(480, 640)]
    assert [d.box_px for d in found] == [(10, 10, 50, 50)]
    assert TiledDetector(inner).class_names == NAMES and "tiled 640px" in TiledDetector(inner).name


@pytest.mark.parametrize("hw", [(1080, 1920), (2160, 3840), (641, 641), (700, 5000), (100, 100)])
@pytest.mark.parametrize(("tile_px", "overlap"), [(640, 0.2), (512, 0.0), (320, 0.5)])
def test_tiles_cover_the_frame_with_the_overlap_asked(hw, tile_px, overlap):
    windows = tiles(hw, tile_px, overlap)

    covered = np.zeros(hw, dtype=bool)
    for t in windows:
        assert 0 <= t.x0 < t.x1 <= hw[1] and 0 <= t.y0 < t.y1 <= hw[0]
        assert t.x1 - t.x0 == min(tile_px, hw[1]) and t.y1 - t.y0 == min(tile_px, hw[0])
        covered[t.y0 : t.y1, t.x0 : t.x1] = True
    assert covered.all()
    xs = sorted({t.x0 for t in windows})
    if len(xs) > 1:
        assert min(np.diff(xs)) <= tile_px * (1 - overlap) + 0.5


@pytest.mark.parametrize(
    ("options", "match"),
    [({"tile_px": 16}, "tile_px"), ({"overlap": 1.0}, "overlap"), ({"overlap": -0.1}, "overlap"), ({"iou": 2}, "iou")],
)
def test_tiled_detector_checks_its_options(options, match):
    with pytest.raises(ValueError, match=match):
        TiledDetector(ColourDetector({}), **options)

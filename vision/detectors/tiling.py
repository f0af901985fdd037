"""Slicing a large frame into overlapping tiles, so that a boat a few pixels long is still seen.

From altitude a vessel can be 10 px long in a 4K frame; letterboxed into a 640 px model
input it shrinks to 2 px and is lost. Running the detector on full-resolution tiles (the
SAHI approach) keeps it large enough; the price is one inference per tile. Objects that a
tile edge cuts come back as pieces from two or more tiles, and objects inside an overlap
come back twice: the merge below turns each into one detection with its whole box.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from vision.detections import Detection, Detections, ObjectClass
from vision.detectors import boxes
from vision.detectors.base import Detector, adding
from vision.frames import Frame

# Two pieces of one object cut by a tile edge share only the overlap band, which can be a
# small part of the larger piece; measured against the smaller piece it is a large part.
FRAGMENT_IOS = 0.25
_CLASS_CODES = {c: i for i, c in enumerate(ObjectClass)}


@dataclass(frozen=True)
class Tile:
    """A window of the frame, in frame pixels, end exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int


def tiles(image_hw: tuple[int, int], tile_px: int, overlap: float) -> tuple[Tile, ...]:
    """Tiles of at most ``tile_px`` square covering the frame, neighbours sharing at least ``overlap`` of a tile.

    Along each axis the tiles are spread evenly from edge to edge, so the last one ends on
    the frame edge rather than hanging over it; a frame no larger than a tile is one tile.
    """
    h, w = image_hw
    return tuple(
        Tile(x, y, min(x + tile_px, w), min(y + tile_px, h))
        for y in _starts(h, tile_px, overlap)
        for x in _starts(w, tile_px, overlap)
    )


def _starts(length: int, tile_px: int, overlap: float) -> list[int]:
    if length <= tile_px:
        return [0]
    step = tile_px * (1 - overlap)
    n = math.ceil((length - tile_px) / step) + 1
    return [round(i * (length - tile_px) / (n - 1)) for i in range(n)]


@dataclass(frozen=True)
class _Piece:
    detection: Detection
    box: np.ndarray
    cut: bool  # touches a tile edge inside the frame, so may be part of a larger object


class TiledDetector:
    """Runs ``inner`` on overlapping tiles (and on the whole frame) and merges what they find.

    ``full_frame`` adds one pass over the whole, letterboxed frame, which finds objects too
    large for a tile. Duplicates of one class are merged: boxes overlapping by more than
    ``iou`` are one object (the best-scoring box stands), and pieces cut by a tile edge are
    joined into the box covering them all.
    """

    def __init__(
        self, inner: Detector, tile_px: int = 640, overlap: float = 0.2, full_frame: bool = True, iou: float = 0.5
    ) -> None:
        if tile_px < 32:
            raise ValueError(f"tile_px must be at least 32, got {tile_px}")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap is a fraction of a tile, at least 0 and below 1, got {overlap}")
        if not 0 <= iou <= 1:
            raise ValueError(f"iou is between 0 and 1, got {iou}")
        self.inner = inner
        self.tile_px = tile_px
        self.overlap = overlap
        self.full_frame = full_frame
        self.iou = iou
        self._edge_px = max(2.0, 0.005 * tile_px)

    @property
    def name(self) -> str:
        return f"{self.inner.name}, tiled {self.tile_px}px with {self.overlap:.0%} overlap"

    @property
    def class_names(self) -> Mapping[int, str]:
        return self.inner.class_names

    def __call__(self, detections: Detections, frame: Frame) -> Detections:
        h, w = frame.height_px, frame.width_px
        windows = tiles((h, w), self.tile_px, self.overlap)
        if len(windows) == 1:
            return self.inner(detections, frame)
        none_yet = replace(detections, items=())
        pieces: list[_Piece] = []
        if self.full_frame:
            whole = self.inner(none_yet, frame)
            pieces += (_Piece(d, np.array(d.box_px, dtype=np.float64), False) for d in whole)
        for t in windows:
            image = np.ascontiguousarray(frame.image[t.y0 : t.y1, t.x0 : t.x1])
            found = self.inner(none_yet, replace(frame, image=image))
            pieces += (self._placed(d, t, (h, w)) for d in found)
        return adding(detections, _merge(pieces, self.iou))

    def _placed(self, d: Detection, t: Tile, image_hw: tuple[int, int]) -> _Piece:
        x1, y1, x2, y2 = d.box_px
        box = np.array([x1 + t.x0, y1 + t.y0, x2 + t.x0, y2 + t.y0], dtype=np.float64)
        e = self._edge_px
        cut = (
            (t.x0 > 0 and x1 <= e)
            or (t.y0 > 0 and y1 <= e)
            or (t.x1 < image_hw[1] and x2 >= t.x1 - t.x0 - e)
            or (t.y1 < image_hw[0] and y2 >= t.y1 - t.y0 - e)
        )
        return _Piece(replace(d, box_px=_box_tuple(box)), box, cut)


def _merge(pieces: Iterable[_Piece], iou_threshold: float) -> tuple[Detection, ...]:
    """One detection per object, best score first; repeated until joining pieces makes no new matches."""
    current = sorted(pieces, key=lambda p: -p.detection.confidence)
    while True:
        merged = _merge_once(current, iou_threshold)
        if len(merged) == len(current):
            return tuple(p.detection for p in merged)
        current = merged


def _merge_once(ordered: list[_Piece], iou_threshold: float) -> list[_Piece]:
    kept: list[_Piece] = []
    kept_boxes = np.zeros((len(ordered), 4))
    kept_classes = np.zeros(len(ordered), dtype=np.int64)
    kept_cut = np.zeros(len(ordered), dtype=bool)
    for piece in ordered:
        n = len(kept)
        code = _CLASS_CODES[piece.detection.object_class]
        same_class = np.flatnonzero(kept_classes[:n] == code)
        others = kept_boxes[same_class]
        duplicate = boxes.iou(piece.box, others) > iou_threshold
        fragment = (piece.cut | kept_cut[same_class]) & (boxes.ios(piece.box, others) >= FRAGMENT_IOS)
        matches = same_class[duplicate | fragment]
        if len(matches):
            i = matches[0]
            kept[i] = _joined(kept[i], piece)
            kept_boxes[i], kept_cut[i] = kept[i].box, kept[i].cut
        else:
            kept.append(piece)
            kept_boxes[n], kept_cut[n], kept_classes[n] = piece.box, piece.cut, code
    return kept


def _joined(better: _Piece, other: _Piece) -> _Piece:
    """The better-scoring piece, with the box of the whole object where one of them has it."""
    if better.cut and other.cut:
        box = np.concatenate([np.minimum(better.box[:2], other.box[:2]), np.maximum(better.box[2:], other.box[2:])])
        return _Piece(replace(better.detection, box_px=_box_tuple(box)), box, True)
    if better.cut:
        return _Piece(replace(better.detection, box_px=other.detection.box_px), other.box, False)
    return _Piece(better.detection, better.box, False)


def _box_tuple(box: np.ndarray) -> tuple[float, float, float, float]:
    return float(box[0]), float(box[1]), float(box[2]), float(box[3])

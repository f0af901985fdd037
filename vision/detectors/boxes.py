"""Box arithmetic on (N, 4) arrays of (x1, y1, x2, y2): overlap measures and non-maximum suppression."""

from __future__ import annotations

import numpy as np


def areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def intersections(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Area shared by ``box`` and each of ``boxes``."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    return w * h


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of ``box`` with each of ``boxes``; 0 where both are empty."""
    inter = intersections(box, boxes)
    union = areas(box[None])[0] + areas(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def ios(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over the smaller area: 1 when one box lies inside the other, whatever their sizes."""
    inter = intersections(box, boxes)
    smaller = np.minimum(areas(box[None])[0], areas(boxes))
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    max_kept: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression, per class when ``class_ids`` is given.

    Returns the indices of the kept boxes, best score first. A box is dropped when its IoU
    with a better-scoring kept box of its class is above ``iou_threshold`` — the rule of
    ``torchvision.ops.nms``, which ultralytics uses, so both give the same boxes. Ties in
    score keep their input order.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ordered = np.asarray(boxes, dtype=np.float64)[order]
    classes = np.zeros(n, dtype=np.int64) if class_ids is None else np.asarray(class_ids)[order]
    limit = n if max_kept is None else max_kept
    alive = np.ones(n, dtype=bool)
    kept: list[int] = []
    for i in range(n):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) >= limit:
            break
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        rest = rest[classes[rest] == classes[i]]
        alive[rest[iou(ordered[i], ordered[rest]) > iou_threshold]] = False
    return order[np.asarray(kept, dtype=np.intp)]

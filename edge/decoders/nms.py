"""Class-aware non-maximum suppression, vectorised, with the results of ``torchvision.ops.batched_nms``.

Greedy NMS keeps box j unless a higher-scoring *kept* box of the same class overlaps it by more than
the threshold. Instead of a Python loop over boxes, the rule is solved as a fixed point on the
suppression matrix: start with everything kept, recompute "kept" from the kept rows, and stop when it
no longer changes. Box j's answer depends only on boxes ranked above it, so each pass settles at least
one more rank; in practice suppression chains are short and a few passes suffice. Classes are solved
one at a time (a loop over the classes present, never over boxes) so the matrices stay small.
(OpenCV's ``cv2.dnn.NMSBoxesBatched`` was tried: it drops zero-area boxes, which torchvision keeps.)
"""

from __future__ import annotations

import numpy as np


def _areas_and_intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.clip(wh, 0, None, out=wh)
    return area_a, area_b, wh[..., 0] * wh[..., 1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N,4] with every box in ``b`` [M,4] (x1,y1,x2,y2) → [N,M].

    Two zero-area boxes give NaN, which compares False against any threshold, as in torchvision.
    """
    area_a, area_b, inter = _areas_and_intersections(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def box_overlap_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area, [N,M]: MTCNN's final "Min" NMS, which also removes a small
    box lying inside a bigger one."""
    area_a, area_b, inter = _areas_and_intersections(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / np.minimum(area_a[:, None], area_b[None, :])


OVERLAPS = {"iou": box_iou, "min": box_overlap_min}


def _greedy_keep(ranked_boxes: np.ndarray, iou_threshold: float, overlap: str = "iou") -> np.ndarray:
    """Keep-mask of greedy NMS over boxes already sorted by descending score."""
    suppresses = np.triu(OVERLAPS[overlap](ranked_boxes, ranked_boxes) > iou_threshold, k=1)
    keep = np.ones(len(ranked_boxes), bool)
    while True:
        settled = ~suppresses[keep].any(axis=0)
        if np.array_equal(settled, keep):
            return keep
        keep = settled


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, class_ids: np.ndarray | None = None,
        max_detections: int | None = None, overlap: str = "iou") -> np.ndarray:
    """Indices of the boxes to keep, highest score first. Boxes of different classes never suppress
    each other when ``class_ids`` is given. ``overlap`` is ``iou`` or ``min`` (see :func:`box_overlap_min`)."""
    order = np.argsort(-scores, kind="stable")
    if len(order) <= 1:
        return order[:max_detections]
    if class_ids is None:
        keep = _greedy_keep(boxes[order], iou_threshold, overlap)
    else:
        ranked_classes = class_ids[order]
        keep = np.zeros(len(order), bool)
        for c in np.unique(ranked_classes):
            members = np.flatnonzero(ranked_classes == c)
            keep[members] = _greedy_keep(boxes[order[members]], iou_threshold, overlap)
    return order[keep][:max_detections]

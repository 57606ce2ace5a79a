"""Class-aware non-maximum suppression, vectorised, with the results of ``torchvision.ops.batched_nms``.

Greedy NMS keeps box j unless a higher-scoring *kept* box of the same class overlaps it by more than
the threshold. Instead of a Python loop over boxes, the rule is solved as a fixed point on the pairs that
suppress: start with everything kept, recompute "kept" from the kept suppressors, and stop when it no
longer changes. Box j's answer depends only on boxes ranked above it, so each pass settles at least one
more rank; in practice suppression chains are short and a few passes suffice. Only pairs of the same
class are compared, all classes at once: the boxes grouped by class, every pair inside a group listed
with index arithmetic (no loop over classes), their overlaps computed in bounded chunks.
(OpenCV's ``cv2.dnn.NMSBoxesBatched`` was tried: it drops zero-area boxes, which torchvision keeps; the
coordinate-offset trick changes float32 overlaps near the threshold.)
"""

from __future__ import annotations

import numpy as np

PAIRS_PER_CHUNK = 1 << 20  # overlaps computed at a time: bounds the temporaries to tens of MB


def _areas_and_intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of boxes ``a`` and ``b`` [..., 4] broadcast against each other."""
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    wh = np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2])
    np.clip(wh, 0, None, out=wh)
    return area_a, area_b, wh[..., 0] * wh[..., 1]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a, area_b, inter = _areas_and_intersections(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a + area_b - inter)


def _overlap_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a, area_b, inter = _areas_and_intersections(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / np.minimum(area_a, area_b)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N,4] with every box in ``b`` [M,4] (x1,y1,x2,y2) → [N,M].

    Two zero-area boxes give NaN, which compares False against any threshold, as in torchvision.
    """
    return _iou(a[:, None], b[None])


def box_overlap_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area, [N,M]: MTCNN's final "Min" NMS, which also removes a small
    box lying inside a bigger one."""
    return _overlap_min(a[:, None], b[None])


OVERLAPS = {"iou": _iou, "min": _overlap_min}  # of boxes paired element by element


def _same_class_pairs(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of positions (i, j), i < j, whose classes are equal, as two index arrays."""
    count = len(classes)
    grouped = np.argsort(classes, kind="stable")  # by class, positions ascending inside a class
    sorted_classes = classes[grouped]
    starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
    group_end = np.repeat(np.r_[starts[1:], count], np.diff(np.r_[starts, count]))
    later = group_end - np.arange(count) - 1  # same-class positions after each position
    first = np.repeat(np.arange(count), later)
    second = first + 1 + np.arange(len(first)) - np.repeat(np.cumsum(later) - later, later)
    return grouped[first], grouped[second]


def _suppressing_pairs(ranked_boxes: np.ndarray, ranked_classes: np.ndarray, iou_threshold: float,
                       overlap: str) -> tuple[np.ndarray, np.ndarray]:
    """(suppressor, suppressed) rank positions: same class, the first ranked higher, overlapping enough."""
    first, second = _same_class_pairs(ranked_classes)
    hits = [np.zeros(0, np.intp)]
    for start in range(0, len(first), PAIRS_PER_CHUNK):
        chunk = slice(start, start + PAIRS_PER_CHUNK)
        overlaps = OVERLAPS[overlap](ranked_boxes[first[chunk]], ranked_boxes[second[chunk]])
        hits.append(np.flatnonzero(overlaps > iou_threshold) + start)
    hits = np.concatenate(hits)
    return first[hits], second[hits]


def _greedy_keep(suppressor: np.ndarray, suppressed: np.ndarray, count: int) -> np.ndarray:
    """Keep-mask of greedy NMS over ``count`` ranked boxes, from the pairs that suppress."""
    keep = np.ones(count, bool)
    while True:
        settled = np.ones(count, bool)
        settled[suppressed[keep[suppressor]]] = False
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
    ranked_classes = np.zeros(len(order), np.int64) if class_ids is None else class_ids[order]
    suppressor, suppressed = _suppressing_pairs(boxes[order], ranked_classes, iou_threshold, overlap)
    return order[_greedy_keep(suppressor, suppressed, len(order))][:max_detections]

"""Bundles that run on another bundle's boxes (``needs.detector``): top-down pose, per-box classification.

The detector's boxes are chosen (``needs.classes``, ``needs.min_score``, the ``needs.max_crops`` best),
widened to the model input's aspect ratio and by ``needs.expand`` about their centres (context around
the person, no distortion), cropped and run one crop per batch item; each crop's Transform takes the
result back to frame pixels. Then the per-crop results are gathered into one result for the frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edge.bundle import Bundle, Needs
from edge.geometry import box_centres, boxes_from_centres
from edge.results import BoxClasses, Classification, Detections, Poses


def wanted_classes(needs: Needs, detector_labels: Sequence[str]) -> np.ndarray | None:
    """The detector's class ids that ``needs.classes`` names (None: every class), found once per run so
    that :func:`choose` compares ids, not label strings, on every frame."""
    if needs.classes is None:
        return None
    return np.flatnonzero(np.isin(np.asarray(detector_labels, dtype=object), needs.classes))


def choose(detections: Detections, needs: Needs, class_ids: np.ndarray | None) -> np.ndarray:
    """Indices of the detections to crop, best score first: those of ``class_ids`` (from
    :func:`wanted_classes`) scoring at least ``needs.min_score``, the ``needs.max_crops`` best."""
    wanted = detections.scores >= needs.min_score
    if class_ids is not None:
        wanted &= np.isin(detections.class_ids, class_ids)
    chosen = np.flatnonzero(wanted)
    order = np.argsort(-detections.scores[chosen], kind="stable")
    return chosen[order][:needs.max_crops]


def crop_boxes(boxes: np.ndarray, aspect: float, expand: float) -> np.ndarray:
    """Boxes [N, 4] grown about their centres to width / height = ``aspect``, then scaled by ``expand``."""
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], (boxes[:, 3] - boxes[:, 1]) * aspect) * expand
    return boxes_from_centres(box_centres(boxes), np.stack([widths, widths / aspect], axis=1) * 0.5)


def region_box(region: tuple[int, int, int, int], model_size: tuple[int, int], frame_size: tuple[int, int]
               ) -> np.ndarray:
    """The box a whole-frame model runs on for a moving ``region`` of a frame (motion cropping): the region
    grown to the model input's aspect, at least the input's size (a small region is not enlarged: the model
    sees it at the frame's own resolution, as Frigate's regions), moved inside the frame where it fits."""
    width, height = model_size
    box = crop_boxes(np.asarray([region], np.float64), width / height, 1.0)[0]
    scale = max(1.0, width / (box[2] - box[0]))
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * scale / 2
    frame = np.asarray(frame_size, np.float64)
    centre = np.where(half * 2 <= frame, np.clip(centre, half, frame - half), frame / 2)
    return np.concatenate([centre - half, centre + half])


def gather(bundle: Bundle, detections: Detections, results: Sequence[Any],
           detector_label: Callable[[int], str]) -> Poses | BoxClasses:
    """One frame result from the per-crop results of ``detections`` (already the chosen ones)."""
    if bundle.task == "pose":
        return _gather_poses(results, detections)
    return _gather_classes(results, detections, detector_label)  # the only other task that takes a detector


def _gather_poses(results: Sequence[Poses], detections: Detections) -> Poses:
    """Each person's pose with the person's box; a crop whose pose scored too low gives none."""
    found = [(pose, box) for pose, box in zip(results, detections.boxes) if len(pose)]
    if not found:
        keypoints = results[0].keypoints.shape[1] if results else 17
        return Poses.empty(keypoints)
    return Poses(np.concatenate([p.keypoints for p, _ in found]), np.concatenate([p.scores for p, _ in found]),
                 np.stack([box for p, box in found for _ in range(len(p))]).astype(np.float32))


def _gather_classes(results: Sequence[Classification], detections: Detections,
                    detector_label: Callable[[int], str]) -> BoxClasses:
    if not results:
        return BoxClasses(detections, np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32), detector_label)
    return BoxClasses(detections, np.stack([r.class_ids for r in results]), np.stack([r.scores for r in results]),
                      detector_label)

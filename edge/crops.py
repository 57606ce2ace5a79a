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

from edge.bundle import Bundle
from edge.results import BoxClasses, Classification, Detections, Poses

DEFAULT_EXPAND = {"pose": 1.25, "classification": 1.0}  # top-down pose keeps a margin around the person
DEFAULT_MAX_CROPS = 16


def choose(detections: Detections, needs: dict[str, Any], label: Callable[[int], str]) -> np.ndarray:
    """Indices of the detections to crop, best score first."""
    wanted = np.ones(len(detections), bool)
    if "classes" in needs:
        classes = set(needs["classes"])
        wanted &= np.array([label(c) in classes for c in detections.class_ids.tolist()], bool)
    wanted &= detections.scores >= needs.get("min_score", 0.0)
    chosen = np.flatnonzero(wanted)
    order = np.argsort(-detections.scores[chosen], kind="stable")
    return chosen[order][:needs.get("max_crops", DEFAULT_MAX_CROPS)]


def crop_boxes(boxes: np.ndarray, aspect: float, expand: float) -> np.ndarray:
    """Boxes [N, 4] grown about their centres to width / height = ``aspect``, then scaled by ``expand``."""
    centres = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], (boxes[:, 3] - boxes[:, 1]) * aspect) * expand
    half = np.stack([widths, widths / aspect], axis=1) * 0.5
    return np.concatenate([centres - half, centres + half], axis=1)


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

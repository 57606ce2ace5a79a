"""How closely a changed model (INT8, pruned, distilled) agrees with the original, judged as a user would.

The original model's outputs are the ground truth, so no labels are needed: detection → mAP@0.5 of the
candidate's boxes against the reference's; segmentation → mIoU of the class maps; pose → mean OKS of
matched people; classification → top-1 agreement. Each function takes per-frame NumPy results of the
reference and the candidate and returns one number in 0..1, higher is better. The INT8 accuracy gate
and the pruning/distillation report both use these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# COCO keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles), from cocoapi.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections: boxes [N,4] x1,y1,x2,y2, scores [N], class ids [N]."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


def detection_map50(reference: Sequence[FrameDetections], candidate: Sequence[FrameDetections]) -> float:
    """COCO-style mAP at IoU 0.5 (torchmetrics + pycocotools) with the reference as ground truth.

    Frames where neither model sees anything agree perfectly; if the reference sees nothing anywhere,
    the score is 1.0 when the candidate also sees nothing and 0.0 otherwise.
    """
    if not any(len(r.scores) for r in reference):
        return 0.0 if any(len(c.scores) for c in candidate) else 1.0
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_thresholds=[0.5], backend="pycocotools")
    metric.update(
        [{"boxes": torch.as_tensor(c.boxes, dtype=torch.float32).reshape(-1, 4),
          "scores": torch.as_tensor(c.scores, dtype=torch.float32),
          "labels": torch.as_tensor(c.class_ids, dtype=torch.int64)} for c in candidate],
        [{"boxes": torch.as_tensor(r.boxes, dtype=torch.float32).reshape(-1, 4),
          "labels": torch.as_tensor(r.class_ids, dtype=torch.int64)} for r in reference],
    )
    return max(0.0, float(metric.compute()["map"]))


def segmentation_miou(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], classes: int) -> float:
    """Mean IoU over the classes present in either model's class maps (``[H, W]`` integer ids)."""
    confusion = np.zeros(classes * classes, np.int64)
    for ref, cand in zip(reference, candidate):
        confusion += np.bincount(ref.ravel().astype(np.int64) * classes + cand.ravel(), minlength=classes * classes)
    confusion = confusion.reshape(classes, classes)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float((intersection[present] / union[present]).mean()) if present.any() else 1.0


def object_keypoint_similarity(reference: np.ndarray, candidate: np.ndarray, area: float,
                               min_visibility: float = 0.3) -> float:
    """OKS of one person: ``[K, 3]`` (x, y, score) arrays; keypoints the reference sees (score above
    ``min_visibility``) count; ``area`` is the person's area in pixels (COCO uses the segment area)."""
    visible = reference[:, 2] > min_visibility
    if not visible.any():
        return 1.0
    sigmas = COCO_SIGMAS if len(reference) == len(COCO_SIGMAS) else np.full(len(reference), COCO_SIGMAS.mean())
    squared = ((reference[:, :2] - candidate[:, :2]) ** 2).sum(axis=1)
    variance = (2 * sigmas) ** 2 * (area + np.spacing(1)) * 2
    return float(np.exp(-squared / variance)[visible].mean())


def pose_mean_oks(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    """Mean OKS over the reference's people (``[N, K, 3]`` per frame); each is matched to the candidate person
    with the highest OKS, and a person the candidate misses scores 0."""
    scores = []
    for ref_people, cand_people in zip(reference, candidate):
        for person in ref_people:
            points = person[person[:, 2] > 0.3, :2]
            extent = points.max(axis=0) - points.min(axis=0) if len(points) else np.zeros(2)
            area = max(float(extent[0] * extent[1]), 1.0)
            scores.append(max((object_keypoint_similarity(person, other, area) for other in cand_people),
                              default=0.0))
    return float(np.mean(scores)) if scores else 1.0


def top1_agreement(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """Fraction of frames on which both models name the same top class."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    return float((reference == candidate).mean()) if len(reference) else 1.0


# Each task's metric, by the name reports print.
METRICS = {"detection": "mAP@0.5", "segmentation": "mIoU", "pose": "mean OKS", "classification": "top-1"}


def task_agreement(task: str, reference: Sequence, candidate: Sequence, classes: int) -> float:
    """The task's agreement metric, the reference standing in for ground truth (``classes``: segmentation only)."""
    if task == "detection":
        return detection_map50(reference, candidate)
    if task == "segmentation":
        return segmentation_miou(reference, candidate, classes)
    if task == "pose":
        return pose_mean_oks(reference, candidate)
    return top1_agreement(reference, candidate)

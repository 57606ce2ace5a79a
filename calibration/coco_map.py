"""COCO mAP at IoU 0.5, written so that a bootstrap over frames costs one cumulative sum per resample.

pycocotools (through torchmetrics) computes one mAP in about a second on a gate's frames; a 95 % interval needs a
thousand resamples. COCO's matching is done per image, so it does not change when frames are resampled: each
detection is matched once here, exactly as ``COCOeval.evaluateImg`` matches it (per image and class, the top
:data:`MAX_DETECTIONS` by score, each taking the unmatched ground-truth box of highest IoU ≥ 0.5), and a resample
only reweights frames. Precision/recall and the 101-point interpolated AP then follow ``COCOeval.accumulate`` with
every count weighted by its frame's multiplicity; with unit weights the result is pycocotools' (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100  # COCOeval's largest maxDets, per image and class
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class Matches:
    """Every kept detection (score, class, frame, matched or not) and every ground-truth box (class, frame)."""

    scores: np.ndarray
    classes: np.ndarray
    frames: np.ndarray
    matched: np.ndarray
    truth_classes: np.ndarray
    truth_frames: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of ``[N, 4]`` and ``[M, 4]`` x1, y1, x2, y2 boxes (COCO's: no +1 on widths)."""
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, np.finfo(np.float64).tiny)


def match(truth: Sequence, found: Sequence) -> Matches:
    """COCO's greedy matching of ``found`` detections to ``truth`` boxes, frame by frame and class by class.

    Both are sequences of objects with ``boxes``, ``class_ids`` (and ``scores`` for ``found``), one per frame."""
    scores, classes, frames, matched = [], [], [], []
    for index, (t, f) in enumerate(zip(truth, found)):
        t_boxes, t_classes = np.asarray(t.boxes, np.float64).reshape(-1, 4), np.asarray(t.class_ids, np.int64)
        f_boxes, f_classes = np.asarray(f.boxes, np.float64).reshape(-1, 4), np.asarray(f.class_ids, np.int64)
        f_scores = np.asarray(f.scores, np.float64)
        for label in np.unique(f_classes):
            mine = np.flatnonzero(f_classes == label)
            mine = mine[np.argsort(-f_scores[mine], kind="mergesort")][:MAX_DETECTIONS]
            theirs = np.flatnonzero(t_classes == label)
            scores.append(f_scores[mine])
            classes.append(np.full(len(mine), label))
            frames.append(np.full(len(mine), index))
            matched.append(_greedy(box_iou(f_boxes[mine], t_boxes[theirs])))
    truth_classes = [np.asarray(t.class_ids, np.int64) for t in truth]
    empty = np.zeros(0, np.int64)
    return Matches(np.concatenate(scores or [np.zeros(0)]), np.concatenate(classes or [empty]),
                   np.concatenate(frames or [empty]), np.concatenate(matched or [np.zeros(0, bool)]),
                   np.concatenate(truth_classes or [empty]),
                   np.concatenate([np.full(len(c), i) for i, c in enumerate(truth_classes)] or [empty]))


def _greedy(iou: np.ndarray) -> np.ndarray:
    """Detections (rows, best score first) each take the free truth box of highest IoU at or above the threshold.

    A loop over one frame's detections of one class: each choice depends on the previous ones."""
    taken = np.zeros(iou.shape[1], bool)
    hit = np.zeros(iou.shape[0], bool)
    for row in range(iou.shape[0]):
        free = np.where(taken, -1.0, iou[row])
        if free.size and free.max() >= IOU_THRESHOLD:
            taken[free.argmax()] = hit[row] = True
    return hit


def mean_ap(matches: Matches, weights: np.ndarray) -> np.ndarray:
    """mAP@0.5 for each row of frame ``weights`` ``[B, F]`` (a frame counted w times; ones: the plain mAP).

    Classes with no ground truth are skipped, as COCO skips them; with no ground truth at all the score is NaN."""
    weights = np.atleast_2d(np.asarray(weights, np.float64))
    per_class = []
    for label in np.unique(matches.truth_classes):
        truths = weights[:, matches.truth_frames[matches.truth_classes == label]].sum(1)  # [B]
        mine = np.flatnonzero(matches.classes == label)
        mine = mine[np.argsort(-matches.scores[mine], kind="mergesort")]
        w = weights[:, matches.frames[mine]]  # [B, D]
        tp = np.cumsum(w * matches.matched[mine], axis=1)
        fp = np.cumsum(w * ~matches.matched[mine], axis=1)
        per_class.append(_interpolated_ap(tp, fp, truths))
    if not per_class:
        return np.full(len(weights), np.nan)
    stacked = np.stack(per_class)  # [classes, B]; NaN where a resample holds no truth box of the class
    counted = ~np.isnan(stacked)
    return np.where(counted, stacked, 0).sum(0) / np.maximum(counted.sum(0), 1)


def _interpolated_ap(tp: np.ndarray, fp: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """COCO's 101-point AP from cumulative true/false positives ``[B, D]`` and truth counts ``[B]``."""
    out = np.full(len(truths), np.nan)
    has = truths > 0
    if not tp.shape[1]:
        out[has] = 0.0
        return out
    recall = tp / np.maximum(truths, np.finfo(np.float64).tiny)[:, None]
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for row in np.flatnonzero(has):
        at = np.searchsorted(recall[row], RECALL_LEVELS, side="left")
        reached = at < tp.shape[1]
        out[row] = precision[row, at[reached]].sum() / len(RECALL_LEVELS)
    return out

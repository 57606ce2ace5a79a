"""Agreement metrics: the numbers the INT8 gate and the pruning report stand on."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.agreement import (
    FrameDetections,
    detection_map50,
    object_keypoint_similarity,
    pose_mean_oks,
    segmentation_miou,
    top1_agreement,
)

pytest.importorskip("torchmetrics")


def frames(rng, n=20):
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(20, 80, (k, 2))], 1).astype(np.float32)
        out.append(FrameDetections(boxes, rng.uniform(0.3, 1, k).astype(np.float32), rng.integers(0, 3, k)))
    return out


def test_map50_of_identical_detections_is_one_and_falls_with_misses():
    reference = frames(np.random.default_rng(0))
    assert detection_map50(reference, reference) == pytest.approx(1.0)
    half = [FrameDetections(r.boxes[::2], r.scores[::2], r.class_ids[::2]) for r in reference]
    assert 0.3 < detection_map50(reference, half) < 0.8
    shifted = [FrameDetections(r.boxes + 200, r.scores, r.class_ids) for r in reference]
    assert detection_map50(reference, shifted) == pytest.approx(0.0, abs=1e-6)
    relabelled = [FrameDetections(r.boxes, r.scores, r.class_ids + 10) for r in reference]
    assert detection_map50(reference, relabelled) == pytest.approx(0.0, abs=1e-6)


def test_map50_when_the_reference_sees_nothing():
    empty = [FrameDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))] * 3
    assert detection_map50(empty, empty) == 1.0
    assert detection_map50(empty, frames(np.random.default_rng(1), 3)) == 0.0


def test_miou_by_hand():
    reference = [np.array([[0, 0], [1, 1]])]
    candidate = [np.array([[0, 1], [1, 1]])]
    # class 0: intersection 1, union 2; class 1: intersection 2, union 3; classes 2..20 absent from both
    assert segmentation_miou(reference, candidate, 21) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert segmentation_miou(reference, reference, 21) == 1.0


def test_oks_follows_the_coco_formula():
    rng = np.random.default_rng(2)
    person = np.concatenate([rng.uniform(0, 100, (17, 2)), np.ones((17, 1))], 1)
    assert object_keypoint_similarity(person, person, 5000.0) == pytest.approx(1.0)
    moved = person.copy()
    moved[:, 0] += 3.0
    sigmas = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10
    expected = np.exp(-9.0 / (2 * 5000.0 * (2 * sigmas) ** 2)).mean()
    assert object_keypoint_similarity(person, moved, 5000.0) == pytest.approx(expected)
    assert pose_mean_oks([person[None]], [np.zeros((0, 17, 3))]) == 0.0
    assert pose_mean_oks([person[None]], [np.stack([moved, person])]) == pytest.approx(1.0)


def test_top1():
    assert top1_agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75

"""Agreement metrics: the numbers the INT8 gate and the pruning report stand on."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.agreement import (
    FrameDetections,
    bootstrap,
    classification_agreement,
    detection_agreement,
    detection_map50,
    object_keypoint_similarity,
    perturb,
    pose_agreement,
    pose_mean_oks,
    segmentation_agreement,
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


def _torchmetrics_map50(reference, candidate, class_agnostic=False):
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    def labels(f):
        return torch.zeros(len(f.class_ids), dtype=torch.int64) if class_agnostic else torch.as_tensor(f.class_ids)

    metric = MeanAveragePrecision(iou_thresholds=[0.5], backend="pycocotools")
    metric.update([{"boxes": torch.as_tensor(c.boxes), "scores": torch.as_tensor(c.scores), "labels": labels(c)}
                   for c in candidate],
                  [{"boxes": torch.as_tensor(r.boxes), "labels": labels(r)} for r in reference])
    return float(metric.compute()["map"])


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_map50_is_pycocotools_map50(class_agnostic):
    """The NumPy matching and accumulation give pycocotools' number on messy candidates: jittered, missing,
    relabelled and extra boxes, ties in score, frames with nothing."""
    rng = np.random.default_rng(3)
    reference = frames(rng, 40)
    candidate = []
    for r in reference:
        keep = rng.random(len(r.scores)) > 0.2
        boxes = r.boxes[keep] + rng.normal(0, 6, (keep.sum(), 4)).astype(np.float32)
        classes = np.where(rng.random(keep.sum()) < 0.15, (r.class_ids[keep] + 1) % 3, r.class_ids[keep])
        extra = frames(rng, 1)[0]
        scores = np.round(rng.uniform(0.01, 1, keep.sum() + len(extra.scores)), 1).astype(np.float32)
        candidate.append(FrameDetections(np.concatenate([boxes, extra.boxes]), scores,
                                         np.concatenate([classes, extra.class_ids])))
    candidate[5] = FrameDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    ours = detection_map50(reference, candidate, class_agnostic)
    assert 0.2 < ours < 0.95
    assert ours == pytest.approx(_torchmetrics_map50(reference, candidate, class_agnostic), abs=1e-6)


def test_class_agnostic_counts_an_object_named_twice_once():
    """A box the reference gives two names (car and truck, IoU 0.9) is one object: a candidate that finds it
    once agrees fully, whichever name it uses, and the candidate's own double naming is no false positive. Two
    objects that overlap less (IoU 0.6: a rider and a bicycle) stay two."""
    car = np.array([100, 100, 140, 130], np.float32)
    twice = np.array([102, 101, 141, 131], np.float32)  # IoU with car 0.87
    rider, bicycle = np.array([300, 100, 340, 180], np.float32), np.array([300, 132, 340, 180], np.float32)
    reference = [FrameDetections(np.stack([car, twice, rider, bicycle]), np.array([0.5, 0.4, 0.9, 0.8], np.float32),
                                 np.array([2, 7, 0, 1]))]

    def candidate(boxes, scores, classes):
        return [FrameDetections(np.stack(boxes), np.array(scores, np.float32), np.array(classes))]

    assert detection_map50(reference, candidate([twice, rider, bicycle], [0.6, 0.9, 0.8], [7, 0, 1]),
                           class_agnostic=True) == pytest.approx(1.0)
    assert detection_map50(reference, candidate([car, twice, rider, bicycle], [0.5, 0.45, 0.9, 0.8], [2, 7, 0, 1]),
                           class_agnostic=True) == pytest.approx(1.0)
    assert detection_map50(reference, candidate([car, rider], [0.5, 0.9], [2, 0]),
                           class_agnostic=True) == pytest.approx(2 / 3, abs=0.01)
    assert detection_map50(reference, candidate([car, rider], [0.5, 0.9], [2, 0])) < 0.6  # class-aware: truck missed


def test_detection_agreement_gates_class_aware_only_with_enough_boxes_per_class():
    rng = np.random.default_rng(4)
    reference = frames(rng, 40)  # 3 classes, about 40 boxes each
    confused = [FrameDetections(r.boxes, r.scores, (r.class_ids + 1) % 3) for r in reference]
    enough = detection_agreement(reference, confused)
    assert enough.metric == "class-aware mAP@0.5" and enough.score < 0.01  # only chance overlaps match
    assert enough.details["class-agnostic mAP@0.5"][0] == pytest.approx(1.0)
    few = detection_agreement(reference, confused, min_boxes=1000)
    assert few.metric == "class-agnostic mAP@0.5" and few.score == pytest.approx(1.0)
    assert min(few.details["boxes_per_class"].values()) < 1000


def test_bootstrap_interval_brackets_the_score_and_narrows_with_frames():
    rng = np.random.default_rng(5)
    small, large = (rng.random(n) < 0.9 for n in (40, 400))
    intervals = {}
    for name, hits in (("small", small), ("large", large)):
        result = classification_agreement(hits.astype(int), np.ones(len(hits), int))
        assert result.low <= result.score <= result.high
        intervals[name] = result.high - result.low
    assert intervals["large"] < intervals["small"] / 2  # about 1/sqrt(10) as wide
    assert bootstrap(lambda w: w.sum(1) / w.shape[1], 1) == (1.0, 1.0, 1.0)


def test_fw_iou_and_pixel_agreement_by_hand_ignore_rare_classes():
    reference = [np.zeros((10, 10), np.uint8)]
    reference[0][:, 5:] = 1
    reference[0][0, 0] = 7  # 1 % of the pixels: kept; a class under 1 % would not be
    candidate = [reference[0].copy()]
    candidate[0][:, 4] = 1  # 10 pixels of class 0 called 1
    result = segmentation_agreement(reference, candidate)
    iou0, iou1 = 39 / 49, 50 / 60
    assert result.score == pytest.approx((49 * iou0 + 50 * iou1 + 1 * 1.0) / 100)
    assert result.details["pixel agreement"][0] == pytest.approx(0.9)
    assert set(result.details["classes (share of reference pixels)"]) == {0, 1, 7}
    rare = [np.pad(m, ((0, 10), (0, 0))) for m in reference]  # class 7 now 0.5 %
    assert 7 not in segmentation_agreement(rare, rare).details["classes (share of reference pixels)"]


def test_perturb_is_invisible_but_not_nothing():
    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([x * 3, y * 4, x + y], -1).astype(np.uint8)  # smooth, as most of a scene is
    out = perturb(image, np.random.default_rng(0))
    difference = np.abs(out.astype(int) - image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert 0.5 < difference.mean() < 3 and difference.max() < 20


def test_miou_by_hand():
    reference = [np.array([[0, 0], [1, 1]])]
    candidate = [np.array([[0, 1], [1, 1]])]
    # class 0: intersection 1, union 2; class 1: intersection 2, union 3; classes 2..20 absent from both
    assert segmentation_miou(reference, candidate, 21) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert segmentation_miou(reference, reference, 21) == 1.0
    void = [np.array([[255, 0], [1, 1]])]  # the void pixel is ignored; class 0: 0 / 1, class 1: 2 / 3
    assert segmentation_miou(void, candidate, 21, ignore=255) == pytest.approx((0 + 2 / 3) / 2)


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
    result = pose_agreement([person[None], person[None]], [np.zeros((0, 17, 3)), person[None]])
    assert result.score == pytest.approx(0.5) and result.low == 0.0 and result.high == 1.0


def test_top1():
    assert top1_agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75

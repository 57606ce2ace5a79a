"""edge's NumPy NMS against torchvision's: the same kept boxes in the same order, and the same IoU matrix.

Scores are a permutation of distinct values, so the order is defined without ties; zero-area boxes
(lines and points) are included because torchvision keeps them and a NaN IoU must not suppress.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ops = pytest.importorskip("torchvision.ops")

from edge.decoders import nms as nms_module  # noqa: E402
from edge.decoders.nms import box_iou, nms  # noqa: E402

SIZES = (0, 1, 2, 40, 600, 3000)
IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def random_boxes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jittered copies of a few objects, as a detector proposes them, so NMS has chains to resolve;
    ~10 % with zero width, height or both; distinct scores."""
    rng = np.random.default_rng(seed)
    objects = rng.integers(0, n // 8 + 1, n)
    centres = rng.uniform(0, 400, (n // 8 + 1, 2))[objects] + rng.normal(0, 6, (n, 2))
    sizes = rng.uniform(10, 120, (n // 8 + 1, 2))[objects] * rng.uniform(0.8, 1.25, (n, 2))
    sizes[rng.random(n) < 0.05, 0] = 0
    sizes[rng.random(n) < 0.05, 1] = 0
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    scores = ((rng.permutation(n) + 1) / (n + 1)).astype(np.float32)
    class_ids = np.where(rng.random(n) < 0.8, objects % 5, rng.integers(0, 5, n))  # mostly the object's class
    return boxes, scores, class_ids


@pytest.mark.parametrize("iou", IOU_THRESHOLDS)
@pytest.mark.parametrize("n", SIZES)
def test_nms_keeps_what_torchvision_keeps(n, iou):
    boxes, scores, _ = random_boxes(n, seed=n)
    expected = ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
    assert nms(boxes, scores, iou).tolist() == expected.tolist()


@pytest.mark.parametrize("iou", IOU_THRESHOLDS)
@pytest.mark.parametrize("n", SIZES)
def test_class_aware_nms_keeps_what_batched_nms_keeps(n, iou):
    boxes, scores, class_ids = random_boxes(n, seed=1000 + n)
    expected = ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(class_ids),
                               iou).numpy()
    assert nms(boxes, scores, iou, class_ids).tolist() == expected.tolist()
    assert nms(boxes, scores, iou, class_ids, max_detections=10).tolist() == expected[:10].tolist()


def test_the_random_boxes_make_nms_work():
    """Guards the parity tests against passing vacuously: boxes are suppressed, and zero-area ones survive."""
    boxes, scores, class_ids = random_boxes(3000, seed=1000 + 3000)
    kept = nms(boxes, scores, 0.5, class_ids)
    zero_area = (boxes[:, 2] == boxes[:, 0]) | (boxes[:, 3] == boxes[:, 1])
    assert 0 < len(kept) < len(boxes) // 2
    assert zero_area[kept].sum() > 10


@pytest.mark.parametrize("n", (1, 50, 700))
def test_box_iou_matches_torchvision(n):
    a, _, _ = random_boxes(n, seed=n)
    b, _, _ = random_boxes(n + 7, seed=n + 1)
    expected = ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(box_iou(a, b), expected, rtol=0, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("classes", [2, 80, 1000])
def test_many_classes_at_once_keep_what_batched_nms_keeps(classes, monkeypatch):
    """All classes are solved together (pairs listed per class with index arithmetic, overlaps in chunks,
    a small chunk here so that several are needed)."""
    monkeypatch.setattr(nms_module, "PAIRS_PER_CHUNK", 1000)
    boxes, scores, _ = random_boxes(2000, seed=classes)
    class_ids = np.random.default_rng(classes).integers(0, classes, len(boxes))
    expected = ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(class_ids),
                               0.5).numpy()
    assert nms(boxes, scores, 0.5, class_ids).tolist() == expected.tolist()
    assert len(expected) < len(boxes)

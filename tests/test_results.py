"""Results' pixel counts: the instance id map built once over the patches' window, and class counts in one
pass, give what painting a frame-sized map and counting class by class gave."""

from __future__ import annotations

import numpy as np
import pytest

from edge.results import Detections, MaskPatches, Segmentation


def frame_sized_id_map(masks: MaskPatches, scores: np.ndarray) -> np.ndarray:
    """The id map as it was built before (frame-sized, three times a frame): the reference."""
    ids = np.zeros(masks.frame_size[::-1], np.uint16)
    for i in np.argsort(scores, kind="stable").tolist():
        (x0, y0), patch = masks.origins[i].tolist(), masks.patches[i]
        ids[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]][patch] = i + 1
    return ids


def random_instances(rng: np.random.Generator, count: int) -> Detections:
    corners = rng.integers(0, 250, (count, 2))
    sizes = rng.integers(1, 70, (count, 2))
    patches = [rng.random((h, w)) < 0.7 for w, h in sizes.tolist()]
    boxes = np.concatenate([corners, corners + sizes], 1).astype(np.float32)
    return Detections(boxes, rng.permutation(count).astype(np.float32) / count, rng.integers(0, 4, count),
                      masks=MaskPatches(corners.astype(np.int64), patches, (320, 330)))


@pytest.mark.parametrize("count", [0, 1, 12])
def test_id_map_and_class_fractions_match_the_frame_sized_map(count):
    detections = random_instances(np.random.default_rng(count), count)
    reference = frame_sized_id_map(detections.masks, detections.scores)
    assert (detections.masks.id_map(detections.scores) == reference).all()
    pixels = np.bincount(reference.ravel(), minlength=count + 1)[1:]
    assert detections.masks.visible_areas(detections.scores).tolist() == pixels.tolist()
    event = detections.to_event(lambda c: f"c{c}")
    per_class = np.bincount(detections.class_ids, weights=pixels, minlength=4) / reference.size
    assert event["class_fractions"] == {f"c{c}": round(f, 6) for c, f in enumerate(per_class.tolist()) if f > 0}
    if count:
        assert 0 < sum(event["class_fractions"].values()) < 1


@pytest.mark.parametrize("classes, dtype", [(5, np.uint8), (12, np.uint16)])
def test_multi_label_fractions_count_each_bit(classes, dtype):
    class_map = np.random.default_rng(classes).integers(0, 1 << classes, (90, 160)).astype(dtype)
    class_map[:10] = 0
    seg = Segmentation(class_map, classes, multi_label=True)
    expected = [np.count_nonzero(class_map & (1 << k)) / class_map.size for k in range(classes)]
    np.testing.assert_allclose(seg.fractions(), expected, rtol=0, atol=1e-12)


def test_class_fractions_of_a_class_map():
    class_map = np.random.default_rng(0).integers(0, 300, (90, 160)).astype(np.uint16)
    seg = Segmentation(class_map, 300)
    assert (seg.pixel_counts() == np.bincount(class_map.ravel(), minlength=300)).all()
    assert seg.fractions().sum() == pytest.approx(1.0)

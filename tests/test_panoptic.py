"""The panoptic merge on hand-made maps: the rules of the heuristic, one at a time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.panoptic import MIN_STUFF_FRACTION, merge
from edge.results import Detections, MaskPatches, Segmentation

SEMANTIC_LABELS = ["background", "person", "sofa", "wall"]
INSTANCE_LABELS = ["__background__", "person", "couch"]


def instances(boxes, scores, classes) -> Detections:
    """Rectangular instance masks filling their boxes, in a 100 × 60 frame."""
    boxes = np.array(boxes, np.float32)
    patches = [np.ones((int(y2 - y1), int(x2 - x1)), bool) for x1, y1, x2, y2 in boxes]
    masks = MaskPatches(boxes[:, :2].astype(np.int64), patches, (100, 60))
    return Detections(boxes, np.array(scores, np.float32), np.array(classes, np.int64), masks=masks)


def semantic(class_map) -> Segmentation:
    return Segmentation(np.asarray(class_map, np.uint8), len(SEMANTIC_LABELS), background=0)


def test_things_stuff_and_void():
    class_map = np.zeros((60, 100), np.uint8)
    class_map[:, 60:] = 3  # wall: stuff
    class_map[10:50, 10:30] = 1  # a person the instance model also found
    class_map[10:50, 35:45] = 1  # a person it did not find: stays void
    found = instances([[10, 10, 30, 50]], [0.9], [1])
    pan = merge(semantic(class_map), found, SEMANTIC_LABELS, INSTANCE_LABELS)
    assert pan.labels == ["person", "wall"] and pan.things == [True, False]
    assert pan.areas == [800, 2400]
    assert (pan.ids[10:50, 10:30] == 1).all() and (pan.ids[:, 60:] == 2).all()
    assert (pan.ids[10:50, 35:45] == 0).all()  # "person" is a thing class of the instance model


def test_better_instances_first_and_mostly_hidden_ones_dropped():
    found = instances([[0, 0, 40, 40], [20, 0, 60, 40], [0, 0, 30, 30]], [0.6, 0.9, 0.5], [1, 1, 1])
    pan = merge(semantic(np.zeros((60, 100))), found, SEMANTIC_LABELS, INSTANCE_LABELS)
    assert len(pan.labels) == 2  # the third is 2/3 under the first: a duplicate
    assert (pan.ids[0:40, 20:60] == 1).all()  # the best (0.9) keeps all its pixels
    assert (pan.ids[0:40, 0:20] == 2).all() and pan.areas == [1600, 800]


def test_label_spellings_and_small_stuff():
    class_map = np.zeros((60, 100), np.uint8)
    class_map[0:30, :] = 2  # VOC "sofa" is not COCO's "couch": stuff
    class_map[59, 99] = 3  # one pixel of wall: below the stuff area floor
    pan = merge(semantic(class_map), instances(np.zeros((0, 4)), [], []), SEMANTIC_LABELS,
                ["__background__", "Dining_Table", "sofa "])
    assert pan.labels == [] and pan.ids.max() == 0  # "sofa " names the instance model's class: a thing
    pan = merge(semantic(class_map), instances(np.zeros((0, 4)), [], []), SEMANTIC_LABELS, INSTANCE_LABELS)
    assert pan.labels == ["sofa"] and pan.areas == [3000]


def two_masks_per_stuff_class(semantic_map, ids, labels, thing_keys, background, min_area):
    """The stuff step as it was before the one-pass version (two frame-sized masks per class): the reference."""
    ids, segments = ids.copy(), []
    for c in np.flatnonzero(np.bincount(semantic_map.ravel())).tolist():
        if c == background or "".join(labels[c].lower().replace("_", " ").split()) in thing_keys:
            continue
        stuff = (semantic_map == c) & (ids == 0)
        if np.count_nonzero(stuff) >= min_area:
            segments.append((labels[c], int(np.count_nonzero(stuff))))
            ids[stuff] = len(segments)
    return ids, segments


@pytest.mark.parametrize("seed", range(4))
def test_stuff_in_one_pass_gives_the_ids_and_areas_of_the_mask_per_class_loop(seed):
    rng = np.random.default_rng(seed)
    labels = [f"class {c}" for c in range(21)]
    blocks = rng.integers(0, 21, (9, 16)).astype(np.uint8)
    blocks[rng.random(blocks.shape) < 0.1] = 20  # a rare class, below the stuff area floor somewhere
    class_map = cv2.resize(blocks, (320, 180), interpolation=cv2.INTER_NEAREST)
    boxes = np.concatenate([xy := rng.uniform(0, 250, (6, 2)).round(), xy + rng.uniform(10, 70, (6, 2)).round()], 1)
    boxes = np.minimum(boxes, [320, 180, 320, 180])
    patches = [rng.random((int(y2 - y1), int(x2 - x1))) < 0.8 for x1, y1, x2, y2 in boxes]
    found = Detections(boxes.astype(np.float32), rng.random(6).astype(np.float32), rng.integers(1, 3, 6),
                       masks=MaskPatches(boxes[:, :2].astype(np.int64), patches, (320, 180)))
    instance_labels = ["__background__", "Class_3", "class 7"]  # classes 3 and 7 are things
    pan = merge(Segmentation(class_map, 21, background=0), found, labels, instance_labels)
    things = sum(pan.things)
    instance_ids = np.where(pan.ids <= things, pan.ids, 0)
    ids, segments = two_masks_per_stuff_class(class_map, instance_ids, labels, {"class3", "class7"}, 0,
                                              MIN_STUFF_FRACTION * class_map.size)
    assert things > 0 and len(segments) > 5
    assert pan.labels[things:] == [name for name, _ in segments] and pan.areas[things:] == [a for _, a in segments]
    assert (np.where(pan.ids > things, pan.ids - things, 0) == np.where(instance_ids == 0, ids, 0)).all()

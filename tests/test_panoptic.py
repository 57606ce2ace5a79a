"""The panoptic merge on hand-made maps: the rules of the heuristic, one at a time."""

from __future__ import annotations

import numpy as np

from edge.panoptic import merge
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

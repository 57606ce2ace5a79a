"""Panoptic segmentation from two bundles on one frame: things from an instance model (Mask R-CNN), stuff
from a semantic model (``needs.instances`` on the semantic bundle).

The merge is the heuristic of the panoptic segmentation paper (Kirillov et al., 2019) as detectron2's
``combine_semantic_and_instance_outputs`` implements it: instances in descending score each take their
pixels not yet taken, and are dropped when more than half of their mask is already taken; then every
stuff class of the semantic map takes its remaining pixels if they are at least ``MIN_STUFF_FRACTION``
of the frame. A semantic class is *stuff* unless its label names one of the instance model's classes
(compared ignoring case, spaces and underscores, so VOC's "diningtable" is COCO's "dining table"); pixels
of a thing class that no instance claims stay void (0), as the instance model is the authority on things.
"""

from __future__ import annotations

import numpy as np

from edge.index_maps import count_values, look_up
from edge.results import Detections, Panoptic, Segmentation

OVERLAP_LIMIT = 0.5  # an instance more than half hidden by better ones is a duplicate
MIN_STUFF_FRACTION = 0.004  # detectron2's 4096 px on a COCO-sized image, as a share of the frame


def _key(label: str) -> str:
    return "".join(label.lower().replace("_", " ").split())


def _name(labels: list[str], class_id: int) -> str:
    return labels[class_id] if 0 <= class_id < len(labels) else f"class_{class_id}"


def merge(semantic: Segmentation, instances: Detections, semantic_labels: list[str],
          instance_labels: list[str]) -> Panoptic:
    """The panoptic id map of one frame (``instances`` must carry masks; both in frame pixels)."""
    ids = np.zeros(semantic.class_map.shape, np.uint16)
    labels: list[str] = []
    things: list[bool] = []
    areas: list[int] = []
    masks = instances.masks
    for i in (np.argsort(-instances.scores, kind="stable").tolist() if masks is not None else []):
        (x0, y0), patch = masks.origins[i].tolist(), masks.patches[i]
        region = ids[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]]
        area = int(np.count_nonzero(patch))
        free = patch & (region == 0)
        visible = int(np.count_nonzero(free))
        if area == 0 or (area - visible) / area > OVERLAP_LIMIT:
            continue
        region[free] = len(labels) + 1
        labels.append(_name(instance_labels, int(instances.class_ids[i])))
        things.append(True)
        areas.append(visible)
    _add_stuff(ids, semantic, semantic_labels, {_key(label) for label in instance_labels}, labels, things, areas)
    return Panoptic(ids, labels, things, areas)


def _add_stuff(ids: np.ndarray, semantic: Segmentation, semantic_labels: list[str], thing_keys: set[str],
               labels: list[str], things: list[bool], areas: list[int]) -> None:
    """Gives every stuff class its pixels that no instance took, in one pass over the frame: the class of
    each free pixel (``num_classes`` where taken), its histogram, then a table from class to segment id."""
    classes = semantic.num_classes
    free_class = np.where(ids == 0, semantic.class_map, np.array(classes, np.min_scalar_type(classes)))
    free_pixels = count_values(free_class, classes)
    segment_of_class = np.zeros(classes + 1, np.uint16)
    for c in np.flatnonzero(free_pixels >= max(1, MIN_STUFF_FRACTION * ids.size)).tolist():
        label = _name(semantic_labels, c)
        if c == semantic.background or _key(label) in thing_keys:
            continue
        labels.append(label)
        things.append(False)
        areas.append(int(free_pixels[c]))
        segment_of_class[c] = len(labels)
    if segment_of_class.any():
        ids += look_up(segment_of_class, free_class)

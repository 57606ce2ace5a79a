"""Annotation of frames for the output video, for every result type, in layers and one colour scheme.

A class has one colour wherever it appears, chosen from its *label* (so "person" is the same colour in
a detector's boxes and a segmenter's mask, in every run). Results are drawn in layers so nothing hides
what matters: semi-transparent masks first, then boxes and captions, then skeletons and landmarks,
then whole-frame class lists.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from edge.results import BoxClasses, Classification, Detections, Poses, Segmentation

# Tableau-10 in BGR: saturated, distinct, readable on video and as a mask tint (the light Tableau-20 shades
# vanish in a mask over bright scenes).
PALETTE = np.array([
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
    (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
], np.uint8)
MASK_ALPHA = 0.5
KEYPOINT_MIN_SCORE = 0.3  # keypoints below are not drawn (MoveNet's and the COCO demos' usual cut)
# COCO-17 limbs (0-based keypoint ids: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                 (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
# Person's left side (odd ids) orange, right side (even ids) blue, the rest green: left/right stay readable.
SIDE_COLORS = {"left": (14, 127, 255), "right": (180, 119, 31), "centre": (44, 160, 44)}

Label = Callable[[int], str]


def color_for(label: str) -> tuple[int, int, int]:
    """The colour of a class label (stable across bundles and runs)."""
    b, g, r = PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]
    return int(b), int(g), int(r)


def _style(image: np.ndarray) -> tuple[int, float]:
    thickness = max(1, round(min(image.shape[:2]) / 300))
    return thickness, thickness * 0.4


def _caption(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], below: bool = False) -> None:
    """A filled label box with white text, above (or below) the point (x, y)."""
    thickness, scale = _style(image)
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    top = min(y, image.shape[0] - h - baseline) if below else max(y - h - baseline, 0)
    cv2.rectangle(image, (x, top), (x + w, top + h + baseline), color, cv2.FILLED)
    cv2.putText(image, text, (x, top + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _blend(region: np.ndarray, mask: np.ndarray, color: np.ndarray | tuple[int, int, int]) -> None:
    """Tints the ``mask`` pixels of ``region`` (in place) with ``color`` (one colour or one per pixel)."""
    pixels = region[mask]
    colors = color[mask] if isinstance(color, np.ndarray) and color.ndim == 3 else np.asarray(color, np.float32)
    region[mask] = (pixels * (1 - MASK_ALPHA) + colors * MASK_ALPHA).astype(np.uint8)


def draw_segmentation(image: np.ndarray, seg: Segmentation, label: Label) -> None:
    """Every class but the background as a tint; with a panoptic map, one shade per segment instead."""
    if seg.panoptic is not None:
        pan = seg.panoptic
        shades = [0.7 + 0.3 * ((i * 7) % 5) / 4 if thing else 1.0 for i, thing in enumerate(pan.things)]
        lut = np.array([(0, 0, 0)] + [np.array(color_for(name)) * s for name, s in zip(pan.labels, shades)],
                       np.float32).astype(np.uint8)
        _blend(image, pan.ids > 0, lut[pan.ids])
    elif seg.multi_label:
        for k in range(seg.num_classes):
            _blend(image, (seg.class_map & (1 << k)) > 0, color_for(label(k)))
    else:
        lut = np.array([color_for(label(c)) for c in range(seg.num_classes)], np.uint8)
        shown = seg.class_map != seg.background if seg.background is not None else np.ones_like(seg.class_map, bool)
        _blend(image, shown, lut[seg.class_map])


def draw_instance_masks(image: np.ndarray, detections: Detections, label: Label) -> None:
    if detections.masks is None:
        return
    for (x0, y0), patch, class_id in zip(detections.masks.origins.tolist(), detections.masks.patches,
                                         detections.class_ids.tolist()):
        _blend(image[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]], patch, color_for(label(class_id)))


def _draw_boxes(image: np.ndarray, detections: Detections, label: Label, captions: Sequence[str]) -> None:
    thickness, _ = _style(image)
    boxes = np.round(detections.boxes).astype(np.int32).tolist()
    for (x1, y1, x2, y2), class_id, caption in zip(boxes, detections.class_ids.tolist(), captions):
        color = color_for(label(class_id))
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        _caption(image, caption, x1, y1, color)


def draw_detections(image: np.ndarray, detections: Detections, label: Label) -> None:
    """Boxes with ``label score`` captions, and landmarks (one colour per landmark index)."""
    captions = [f"{label(c)} {s:.2f}" for c, s in zip(detections.class_ids.tolist(), detections.scores.tolist())]
    _draw_boxes(image, detections, label, captions)
    if detections.keypoints is not None:
        thickness, _ = _style(image)
        for points in np.round(detections.keypoints[..., :2]).astype(np.int32).tolist():
            for k, (x, y) in enumerate(points):
                cv2.circle(image, (x, y), thickness + 1, tuple(int(v) for v in PALETTE[k % len(PALETTE)]),
                           cv2.FILLED, cv2.LINE_AA)


def draw_box_classes(image: np.ndarray, boxes: BoxClasses, label: Label) -> None:
    """This bundle's best class below each box (the detector's own drawing gives the box)."""
    for (x1, _, _, y2), ids, scores in zip(np.round(boxes.detections.boxes).astype(np.int32).tolist(),
                                           boxes.class_ids.tolist(), boxes.scores.tolist()):
        if ids:
            _caption(image, f"{label(ids[0])} {scores[0]:.2f}", x1, y2, color_for(label(ids[0])), below=True)


def _side(k: int) -> str:
    return "centre" if k == 0 else ("left" if k % 2 else "right")


def draw_poses(image: np.ndarray, poses: Poses, label: Label) -> None:
    """COCO-17 skeletons (left orange, right blue); other keypoint sets as points."""
    thickness, _ = _style(image)
    for points in poses.keypoints.tolist():
        seen = [score >= KEYPOINT_MIN_SCORE for _, _, score in points]
        xy = [(round(x), round(y)) for x, y, _ in points]
        if len(points) == 17:
            for a, b in COCO_SKELETON:
                if seen[a] and seen[b]:
                    side = _side(a) if _side(a) == _side(b) else "centre"
                    cv2.line(image, xy[a], xy[b], SIDE_COLORS[side], thickness + 1, cv2.LINE_AA)
        for k, point in enumerate(xy):
            if seen[k]:
                cv2.circle(image, point, thickness + 2, SIDE_COLORS[_side(k)], cv2.FILLED, cv2.LINE_AA)


def draw_classification(image: np.ndarray, result: Classification, label: Label) -> None:
    """The top three classes, top left."""
    _, scale = _style(image)
    step = round(30 * scale) + 8
    for row, (c, s) in enumerate(zip(result.class_ids[:3].tolist(), result.scores[:3].tolist())):
        _caption(image, f"{label(c)} {s:.2f}", 0, step * (row + 1), color_for(label(c)))


MASKS, BOXES, SHAPES, TEXT = range(4)
_DRAWERS: dict[type, tuple[tuple[int, Callable[[np.ndarray, object, Label], None]], ...]] = {
    Segmentation: ((MASKS, draw_segmentation),),
    Detections: ((MASKS, draw_instance_masks), (BOXES, draw_detections)),
    BoxClasses: ((BOXES, draw_box_classes),),
    Poses: ((SHAPES, draw_poses),),
    Classification: ((TEXT, draw_classification),),
}


def draw_results(image: np.ndarray, results: Sequence[tuple[object, Label]]) -> None:
    """Draws several bundles' results onto ``image`` in place, layer by layer (masks under boxes under
    skeletons), choosing each drawing by the result's type."""
    steps = [(layer, i, draw, result, label) for i, (result, label) in enumerate(results)
             for layer, draw in _DRAWERS[type(result)]]
    for _, _, draw, result, label in sorted(steps, key=lambda step: step[:2]):
        draw(image, result, label)

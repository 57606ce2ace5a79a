"""How each result type looks on a frame, in layers and one colour scheme (:mod:`edge.palette`).

Results are drawn in layers so nothing hides what matters: semi-transparent masks first, then zones and lines
(:mod:`edge.analytics.drawing`), then boxes,
then skeletons and landmarks, then text (class lists and legends); captions are placed last, on top,
where they cover no other caption (:class:`edge.canvas.Canvas`). Per-frame callers use
:class:`edge.annotate.Annotator`, which draws on a copy in buffers it keeps; :func:`draw_results` draws in
place with fresh buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from edge.analytics.drawing import draw_analytics
from edge.analytics.stage import FrameAnalytics
from edge.canvas import TOP_LEFT, TOP_RIGHT, Canvas
from edge.palette import PALETTE, Label, class_colors, color_for, color_table
from edge.results import BoxClasses, Classification, Detections, Poses, Segmentation

KEYPOINT_MIN_SCORE = 0.3  # keypoints below are not drawn (MoveNet's and the COCO demos' usual cut)
LEGEND_ROWS = 12  # classes a segmentation legend lists; the rest are counted in one more row
# COCO-17 limbs (0-based keypoint ids: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                 (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
# Person's left side (odd ids) orange, right side (even ids) blue, the rest green: left/right stay readable.
SIDE_COLORS = {"left": (14, 127, 255), "right": (180, 119, 31), "centre": (44, 160, 44)}


def _side(k: int) -> str:
    return "centre" if k == 0 else ("left" if k % 2 else "right")


def _limb_side(a: int, b: int) -> str:
    return _side(a) if _side(a) == _side(b) else "centre"


@lru_cache(maxsize=8)
def _joints_by_side(keypoints: int) -> tuple[tuple[str, np.ndarray], ...]:
    return tuple((side, np.array([k for k in range(keypoints) if _side(k) == side], np.intp)) for side in SIDE_COLORS)


LIMBS_BY_SIDE = tuple((side, np.array([limb for limb in COCO_SKELETON if _limb_side(*limb) == side], np.intp))
                      for side in SIDE_COLORS)


def draw_segmentation(canvas: Canvas, seg: Segmentation, label: Label) -> None:
    """Every class but the background as a tint; with a panoptic map, one shade per segment instead."""
    if seg.panoptic is not None:
        pan = seg.panoptic
        shades = [0.7 + 0.3 * ((i * 7) % 5) / 4 if thing else 1.0 for i, thing in enumerate(pan.things)]
        lut = np.array([(0, 0, 0)] + [np.array(color_for(name)) * s for name, s in zip(pan.labels, shades)],
                       np.float32).astype(np.uint8)
        canvas.tint_map(pan.ids, lut, hidden=0)
    elif seg.multi_label:
        canvas.tint_bits(seg.class_map, {k: color_for(label(k)) for k in np.flatnonzero(seg.pixel_counts()).tolist()})
    else:
        canvas.tint_map(seg.class_map, color_table(label, seg.num_classes), seg.background)


def draw_legend(canvas: Canvas, seg: Segmentation, label: Label) -> None:
    """The classes in the frame with their colours, top right (segment labels for a panoptic map)."""
    if seg.panoptic is not None:
        names = list(dict.fromkeys(seg.panoptic.labels))
    else:
        names = [label(c) for c in np.flatnonzero(seg.pixel_counts()).tolist() if c != seg.background]
    rows = [(name, color_for(name)) for name in names[:LEGEND_ROWS]]
    if len(names) > LEGEND_ROWS:
        rows.append((f"+{len(names) - LEGEND_ROWS} more", (0, 0, 0)))
    canvas.panel(rows, TOP_RIGHT)


def draw_instance_masks(canvas: Canvas, detections: Detections, label: Label) -> None:
    if detections.masks is None:
        return
    colors = class_colors(label, detections.class_ids).tolist()
    for (x0, y0), patch, color in zip(detections.masks.origins.tolist(), detections.masks.patches, colors):
        canvas.tint_patch(x0, y0, patch, tuple(color))


def draw_detections(canvas: Canvas, detections: Detections, label: Label) -> None:
    """Boxes with ``#track label score`` captions, and landmarks (one colour per landmark index)."""
    colors = class_colors(label, detections.class_ids)
    canvas.boxes(detections.boxes, colors)
    tracks = detections.track_ids.tolist() if detections.track_ids is not None else [-1] * len(detections)
    corners = np.round(detections.boxes[:, :2]).astype(np.int32).tolist()
    for (x, y), class_id, score, track, color in zip(corners, detections.class_ids.tolist(),
                                                     detections.scores.tolist(), tracks, colors.tolist()):
        text = f"{label(class_id)} {score:.2f}"
        canvas.caption(f"#{track} {text}" if track >= 0 else text, x, y, tuple(color))
    if detections.keypoints is not None:
        points = np.round(detections.keypoints[..., :2]).astype(np.int32)
        for k in range(points.shape[1]):
            canvas.dots(points[:, k], tuple(PALETTE[k % len(PALETTE)].tolist()), canvas.style.line + 1)


def draw_box_classes(canvas: Canvas, boxes: BoxClasses, label: Label) -> None:
    """This bundle's best class below each box (the detector's own drawing gives the box)."""
    for (x1, _, _, y2), ids, scores in zip(np.round(boxes.detections.boxes).astype(np.int32).tolist(),
                                           boxes.class_ids.tolist(), boxes.scores.tolist()):
        if ids:
            canvas.caption(f"{label(ids[0])} {scores[0]:.2f}", x1, y2, color_for(label(ids[0])), below=True)


def draw_poses(canvas: Canvas, poses: Poses, label: Label) -> None:
    """COCO-17 skeletons (left orange, right blue); other keypoint sets as points. One line call and one
    dot call per side colour for all people at once."""
    xy = np.round(poses.keypoints[..., :2]).astype(np.int32)
    seen = poses.keypoints[..., 2] >= KEYPOINT_MIN_SCORE
    thickness = canvas.style.line
    if xy.shape[1] == 17:
        for side, limbs in LIMBS_BY_SIDE:
            shown = seen[:, limbs[:, 0]] & seen[:, limbs[:, 1]]
            canvas.lines(xy[:, limbs][shown], SIDE_COLORS[side], thickness + 1)
    for side, joints in _joints_by_side(xy.shape[1]):
        canvas.dots(xy[:, joints][seen[:, joints]], SIDE_COLORS[side], thickness + 2)


def draw_classification(canvas: Canvas, result: Classification, label: Label) -> None:
    """The top three classes, top left."""
    canvas.panel([(f"{label(c)} {s:.2f}", color_for(label(c)))
                  for c, s in zip(result.class_ids[:3].tolist(), result.scores[:3].tolist())], TOP_LEFT)


MASKS, ZONES, BOXES, SHAPES, TEXT = range(5)
_DRAWERS: dict[type, tuple[tuple[int, Callable[[Canvas, object, Label], None]], ...]] = {
    FrameAnalytics: ((ZONES, draw_analytics),),
    Segmentation: ((MASKS, draw_segmentation), (TEXT, draw_legend)),
    Detections: ((MASKS, draw_instance_masks), (BOXES, draw_detections)),
    BoxClasses: ((BOXES, draw_box_classes),),
    Poses: ((SHAPES, draw_poses),),
    Classification: ((TEXT, draw_classification),),
}


def paint(canvas: Canvas, results: Sequence[tuple[object, Label]]) -> None:
    """Draws several bundles' results onto the canvas's frame, layer by layer (masks under boxes under
    skeletons under text), choosing each drawing by the result's type; captions wait for
    :meth:`Canvas.finish`."""
    steps = [(layer, i, draw, result, label) for i, (result, label) in enumerate(results)
             for layer, draw in _DRAWERS[type(result)]]
    for _, _, draw, result, label in sorted(steps, key=lambda step: step[:2]):
        draw(canvas, result, label)


def draw_results(image: np.ndarray, results: Sequence[tuple[object, Label]]) -> None:
    """Draws results onto ``image`` in place (one-off callers; per frame, use an ``Annotator``)."""
    canvas = Canvas()
    canvas.begin(image)
    paint(canvas, results)
    canvas.finish()

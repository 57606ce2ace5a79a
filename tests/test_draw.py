"""Drawing: the OpenCV tints give the float blend's pixels within one level, the annotator draws on its own
copy in buffers it keeps, and the picture is readable (palette, captions that never overlap, track ids,
legend, overlay)."""

from __future__ import annotations

import itertools
import zlib

import cv2
import numpy as np
import pytest

from edge.annotate import Annotator
from edge.canvas import MASK_ALPHA, Canvas
from edge.draw import SIDE_COLORS, draw_instance_masks, draw_poses, draw_results, draw_segmentation
from edge.palette import PALETTE, color_for, color_table
from edge.results import Detections, MaskPatches, Panoptic, Poses, Segmentation

LABELS = ["background", "person", "car", "dog", "sofa", "wall", "tree", "sky"]


def label(c: int) -> str:
    return LABELS[c] if c < len(LABELS) else f"class_{c}"


def float_blend(image: np.ndarray, mask: np.ndarray, colors: np.ndarray) -> None:
    """The blend drawing used before the hot-path work (float64 temporaries), kept as the reference."""
    colors = colors[mask] if colors.ndim == 3 else colors.astype(np.float32)
    image[mask] = (image[mask] * (1 - MASK_ALPHA) + colors * MASK_ALPHA).astype(np.uint8)


@pytest.fixture
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (120, 200, 3), np.uint8)


def class_map(classes: int, dtype=np.uint8, seed: int = 1) -> np.ndarray:
    blocks = np.random.default_rng(seed).integers(0, classes, (12, 20)).astype(dtype)
    return np.repeat(np.repeat(blocks, 10, axis=0), 10, axis=1)


def drawn(frame: np.ndarray, draw, result) -> np.ndarray:
    canvas, image = Canvas(), frame.copy()
    canvas.begin(image)
    draw(canvas, result, label)
    return image


def assert_within_one_level(ours: np.ndarray, reference: np.ndarray) -> None:
    difference = np.abs(ours.astype(np.int16) - reference)
    assert difference.max() <= 1, difference.max()


@pytest.mark.parametrize("classes, dtype, background", [(8, np.uint8, 0), (8, np.uint8, None), (300, np.uint16, 0)])
def test_class_tint_matches_the_float_blend(frame, classes, dtype, background):
    seg = Segmentation(class_map(classes, dtype), classes, background=background)
    reference = frame.copy()
    shown = seg.class_map != background if background is not None else np.ones(seg.class_map.shape, bool)
    float_blend(reference, shown, color_table(label, classes)[seg.class_map])
    ours = drawn(frame, draw_segmentation, seg)
    assert_within_one_level(ours, reference)
    assert (ours[~shown] == frame[~shown]).all() and (ours != frame).any()


def test_panoptic_and_multi_label_tints_match_the_float_blend(frame):
    ids = class_map(4, np.uint16)
    panoptic = Panoptic(ids, ["person", "person", "wall"], [True, True, False], [0, 0, 0])
    seg = Segmentation(class_map(8), 8, background=0, panoptic=panoptic)
    reference = frame.copy()
    shades = (0.7, 0.7 + 0.3 * 2 / 4, 1.0)  # the shade of each segment: things differ, stuff is as is
    lut = np.array([(0, 0, 0)] + [np.array(color_for(n)) * s for n, s in zip(panoptic.labels, shades)], np.float32)
    float_blend(reference, ids > 0, lut.astype(np.uint8)[ids])
    assert_within_one_level(drawn(frame, draw_segmentation, seg), reference)

    bits = class_map(8, seed=2) | (class_map(2, seed=3) << 2)  # overlapping independent classes
    seg = Segmentation(bits, 4, multi_label=True)
    reference = frame.copy()
    for k in range(4):
        float_blend(reference, (bits & (1 << k)) > 0, np.array(color_for(label(k))))
    assert_within_one_level(drawn(frame, draw_segmentation, seg), reference)


def test_instance_mask_tint_matches_the_float_blend(frame):
    rng = np.random.default_rng(4)
    patches = [rng.random((30, 50)) > 0.5, rng.random((40, 20)) > 0.3]
    origins = np.array([[10, 20], [150, 70]])
    detections = Detections(np.zeros((2, 4), np.float32), np.ones(2, np.float32), np.array([1, 3]),
                            masks=MaskPatches(origins, patches, (200, 120)))
    reference = frame.copy()
    for (x, y), patch, c in zip(origins, patches, (1, 3)):
        region = reference[y:y + patch.shape[0], x:x + patch.shape[1]]
        float_blend(region, patch, np.array(color_for(label(c))))
    assert_within_one_level(drawn(frame, draw_instance_masks, detections), reference)


def test_one_call_per_colour_draws_what_a_call_per_shape_draws(frame):
    """Boxes and limbs go out as one polylines call per colour: the same pixels as rectangle/line per shape."""
    boxes = np.array([[10.4, 5, 80, 60], [30, 20, 150.6, 100], [0, 0, 199, 119]], np.float32)
    colors = np.array([[0, 0, 255], [0, 255, 0], [0, 0, 255]], np.uint8)
    segments = np.array([[[5, 5], [100, 90]], [[150, 10], [20, 110]]], np.int32)
    canvas, ours = Canvas(), frame.copy()
    canvas.begin(ours)
    canvas.boxes(boxes, colors)
    canvas.lines(segments, (255, 0, 0), 3)
    reference = frame.copy()
    for (x1, y1, x2, y2), color in zip(np.round(boxes).astype(int).tolist(), colors.tolist()):
        cv2.rectangle(reference, (x1, y1), (x2, y2), color, canvas.style.line, cv2.LINE_AA)
    for a, b in segments.tolist():
        cv2.line(reference, a, b, (255, 0, 0), 3, cv2.LINE_AA)
    assert (ours == reference).all()


def test_poses_draw_seen_joints_in_their_side_colour(frame):
    keypoints = np.zeros((2, 17, 3), np.float32)
    keypoints[..., 0] = np.arange(17) * 10 + 15
    keypoints[..., 1] = [[30], [90]]
    keypoints[..., 2] = 0.9
    keypoints[1, 5, 2] = 0.1  # a left shoulder too uncertain to draw, and its limbs with it
    image = drawn(frame, draw_poses, Poses(keypoints, np.ones(2, np.float32)))
    points = np.round(keypoints[..., :2]).astype(int)
    for person, k in itertools.product(range(2), range(17)):
        x, y = points[person, k]
        side = "centre" if k == 0 else ("left" if k % 2 else "right")
        if (person, k) != (1, 5):
            assert tuple(image[y, x]) == SIDE_COLORS[side]
    keypoints[1, 5, :2] = -100  # where it is does not matter: it is not drawn
    assert (drawn(frame, draw_poses, Poses(keypoints, np.ones(2, np.float32))) == image).all()


def test_annotator_draws_on_its_own_copy_and_keeps_its_buffers(frame):
    seg = Segmentation(class_map(8), 8, background=0)
    detections = Detections(np.array([[20, 30, 90, 100]], np.float32), np.array([0.9], np.float32), np.array([1]))
    results = [(seg, label), (detections, label)]
    untouched = frame.copy()
    annotator = Annotator()
    first = annotator.draw(frame, results)
    buffers = [annotator._canvas._tint, annotator._canvas._blend, annotator._canvas._mask]
    assert (frame == untouched).all() and first is not frame and (first != frame).any()
    second = annotator.draw(frame, results)
    assert second is first and (frame == untouched).all()
    assert all(a is b for a, b in zip([annotator._canvas._tint, annotator._canvas._blend,
                                       annotator._canvas._mask], buffers))
    larger = annotator.draw(np.zeros((240, 320, 3), np.uint8), [(detections, label)])
    assert larger.shape == (240, 320, 3) and annotator._canvas._tint.shape == (240, 320, 3)

    in_place = frame.copy()
    draw_results(in_place, results)
    assert (in_place == annotator.draw(frame, results)).all()  # the one-off path draws the same picture


def test_palette_has_twenty_distinct_colours_and_no_grey():
    lab = cv2.cvtColor(PALETTE[None].astype(np.float32) / 255, cv2.COLOR_BGR2Lab)[0]
    assert len(PALETTE) >= 20
    assert np.hypot(lab[:, 1], lab[:, 2]).min() > 25  # chroma: a grey has almost none
    distances = np.linalg.norm(lab[:, None] - lab[None], axis=2)[np.triu_indices(len(lab), 1)]
    assert distances.min() > 15  # ΔE76: each pair tells apart at a glance
    assert color_for("person") == tuple(PALETTE[zlib.crc32(b"person") % len(PALETTE)].tolist())


def overlaps(rects: np.ndarray) -> list[tuple[int, int]]:
    return [(i, j) for i, j in itertools.combinations(range(len(rects)), 2)
            if rects[i, 0] < rects[j, 2] and rects[j, 0] < rects[i, 2]
            and rects[i, 1] < rects[j, 3] and rects[j, 1] < rects[i, 3]]


def test_captions_of_a_crowd_do_not_overlap_and_stay_in_the_frame():
    rng = np.random.default_rng(5)
    boxes = np.array([400, 300, 600, 700], np.float32) + rng.uniform(-15, 15, (40, 4)).astype(np.float32)
    detections = Detections(boxes, rng.uniform(0.3, 1, 40).astype(np.float32), rng.integers(0, 8, 40))
    seg = Segmentation(np.repeat(np.arange(8, dtype=np.uint8), 240)[None].repeat(1080, 0), 8, background=0)
    annotator = Annotator(overlay=True)
    annotator.draw(np.zeros((1080, 1920, 3), np.uint8), [(seg, label), (detections, label)])
    placed = annotator.placed
    assert len(placed) == 40 + 7 + 1  # every caption found a spot, besides 7 legend rows and the overlay
    assert overlaps(placed) == []
    assert (placed[:, :2] >= 0).all() and (placed[:, 2] <= 1920).all() and (placed[:, 3] <= 1080).all()
    assert 24 <= (placed[:, 3] - placed[:, 1]).min() <= 40  # legible at 1080p, yet not a banner


def test_track_ids_legend_and_overlay_are_drawn(frame):
    detections = Detections(np.array([[20, 40, 60, 80], [120, 40, 180, 80]], np.float32),
                            np.array([0.9, 0.8], np.float32), np.array([1, 2]), track_ids=np.array([7, -1]))
    seg = Segmentation(class_map(4), 4, background=0)
    annotator = Annotator()
    annotator.draw(frame, [(detections, label)])
    style = annotator._canvas.style
    widths = sorted((annotator.placed[:, 2] - annotator.placed[:, 0]).tolist())
    assert widths == sorted([style.text_width("#7 person 0.90"), style.text_width("car 0.80")])

    annotator.draw(frame, [(seg, label)])
    legend = annotator.placed
    assert len(legend) == 3 and (legend[:, 2] == frame.shape[1]).all()  # classes 1-3, top right
    assert sorted(legend[:, 2] - legend[:, 0]) == sorted(style.text_width(label(c)) for c in (1, 2, 3))

    with_overlay = Annotator(overlay=True)
    with_overlay.draw(frame, [])
    (x0, _, _, y1), = with_overlay.placed
    assert x0 == 0 and y1 == frame.shape[0]

"""Preprocessing against a plain reference implementation, the inverse mapping, and no per-frame allocation."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from edge.bundle import InputSpec
from edge.preprocess import Preprocessor

RNG = np.random.default_rng(0)
FRAME = RNG.integers(0, 256, (432, 768, 3), np.uint8)  # BGR, wider than tall
TALL = RNG.integers(0, 256, (500, 300, 3), np.uint8)


def reference(image, spec: InputSpec) -> np.ndarray:
    """The obvious, allocating way: pad/resize on a canvas, convert colour, normalise, transpose."""
    h, w = image.shape[:2]
    W, H = spec.width, spec.height
    canvas = np.full((H, W, 3), spec.pad_value, np.float32)
    if spec.resize == "stretch":
        canvas[:] = cv2.resize(image, (W, H), interpolation=cv2.INTER_LINEAR)
    elif spec.resize == "square-pad":
        side = max(w, h)
        square = np.full((side, side, 3), spec.pad_value, np.uint8)
        square[:h, :w] = image
        nw, nh = round(w * W / side), round(h * H / side)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        r = min(W / w, H / h)
        nw, nh = round(w * r), round(h * r)
        x0, y0 = ((W - nw) // 2, (H - nh) // 2) if spec.resize == "letterbox-center" else (0, 0)
        canvas[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if spec.color == "rgb":
        canvas = canvas[..., ::-1]
    canvas = (canvas - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    tensor = canvas.transpose(2, 0, 1) if spec.layout == "nchw" else canvas
    return tensor[None].astype(spec.dtype)


SPECS = [
    InputSpec("x", (1, 3, 416, 416), "nchw", "bgr", "float32", "letterbox", 114.0),
    InputSpec("x", (1, 3, 320, 640), "nchw", "rgb", "float32", "letterbox-center", 114.0),
    InputSpec("x", (1, 3, 240, 320), "nchw", "rgb", "float32", "stretch", 0.0, (127.0,) * 3, (128.0,) * 3),
    InputSpec("x", (1, 3, 384, 384), "nchw", "rgb", "float32", "stretch", 0.0,
              (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    InputSpec("x", (1, 128, 128, 3), "nhwc", "rgb", "float32", "square-pad", 0.0, (0.0,) * 3, (255.0,) * 3),
    InputSpec("x", (1, 192, 192, 3), "nhwc", "rgb", "uint8", "stretch", 0.0),
    InputSpec("x", (1, 3, 256, 192), "nchw", "bgr", "uint8", "letterbox-center", 0.0),
]


def _id(spec):
    return f"{spec.layout}-{spec.color}-{spec.dtype}-{spec.resize}-{spec.width}x{spec.height}"


@pytest.mark.parametrize("spec", SPECS, ids=_id)
@pytest.mark.parametrize("image", [FRAME, TALL], ids=["wide", "tall"])
def test_matches_reference(spec, image):
    out = np.zeros(spec.shape, spec.dtype)
    Preprocessor(spec)(image, out)
    expected = reference(image, spec)
    tolerance = 0 if spec.dtype == "uint8" else 1e-5
    np.testing.assert_allclose(out, expected, atol=tolerance, rtol=1e-6)


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_pad_is_rewritten_when_the_source_size_changes(spec):
    """A buffer reused across sources of different sizes must not keep the previous frame's pixels."""
    out = np.zeros(spec.shape, spec.dtype)
    pre = Preprocessor(spec)
    pre(FRAME, out)
    pre(TALL, out)
    np.testing.assert_allclose(out, reference(TALL, spec), atol=1e-5 if spec.dtype == "float32" else 0)


@pytest.mark.parametrize("spec", SPECS, ids=_id)
@pytest.mark.parametrize("image", [FRAME, TALL], ids=["wide", "tall"])
def test_inverse_mapping_round_trips(spec, image):
    transform = Preprocessor(spec)(image, np.zeros(spec.shape, spec.dtype))
    h, w = image.shape[:2]
    source = np.array([[0, 0, w, h], [10.5, 20.25, w / 2, h / 3]], np.float64)
    model = source.copy()
    model[:, 0::2] = model[:, 0::2] * transform.scale_x + transform.offset_x
    model[:, 1::2] = model[:, 1::2] * transform.scale_y + transform.offset_y
    np.testing.assert_allclose(transform.boxes_to_source(model.copy()), source, atol=1e-9)
    np.testing.assert_allclose(transform.points_to_source(model[:, :2].copy()), source[:, :2], atol=1e-9)
    # the frame's far corner lands on the content's far corner in the model input
    assert model[0, 2] == pytest.approx(transform.offset_x + round(w * transform.scale_x), abs=1e-6)


def test_letterbox_places_content_top_left_and_pads_the_rest():
    spec = SPECS[0]
    out = np.zeros(spec.shape, np.float32)
    transform = Preprocessor(spec)(FRAME, out)
    assert (transform.offset_x, transform.offset_y) == (0, 0)
    assert transform.scale_x == pytest.approx(416 / 768)
    assert (out[0, :, 234:, :] == 114).all() and (out[0, :, :234, :] != 114).any()


def test_boxes_are_clipped_to_the_frame():
    spec = SPECS[1]
    transform = Preprocessor(spec)(FRAME, np.zeros(spec.shape, np.float32))
    boxes = np.array([[-50.0, -50.0, 1000.0, 1000.0]])
    np.testing.assert_array_equal(transform.boxes_to_source(boxes), [[0, 0, 768, 432]])


@pytest.mark.parametrize("spec", SPECS, ids=_id)
def test_no_allocation_per_frame(spec):
    out = np.zeros(spec.shape, spec.dtype)
    pre = Preprocessor(spec)
    pre(FRAME, out)  # plans buffers for this source size
    tracemalloc.start()
    for _ in range(5):
        pre(FRAME, out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # NumPy's casting loops use fixed scratch buffers (32 KiB in NumPy 2, 64 KiB in 1.26) whatever the frame
    # size; anything frame-sized (the smallest float input here is 192 KiB) would fail this.
    assert peak < 100_000, f"{peak} bytes allocated for a {out.nbytes}-byte input"


def test_rejects_frames_that_are_not_bgr_uint8():
    with pytest.raises(ValueError, match="BGR uint8"):
        Preprocessor(SPECS[0])(FRAME.astype(np.float32), np.zeros(SPECS[0].shape, np.float32))

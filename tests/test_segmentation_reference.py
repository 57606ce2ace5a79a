"""The CPU segmentation reference (argmax + nearest resize back to the frame) and the host half of the GPU
kernels: OpenCV's resampling tables, which the kernels read, checked against OpenCV itself on real frames."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.bundle import InputSpec
from edge.gpu.preprocess import linear_taps
from edge.gpu.segmentation import nearest_index
from edge.preprocess import Preprocessor, Transform
from edge.segmentation import ClassMap

ESPNET = InputSpec("image", (1, 3, 384, 384), "nchw", "rgb", "float32", "stretch", 0.0,
                   (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


@pytest.fixture(scope="module")
def people(assets):
    return cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))


@pytest.fixture(scope="module")
def frames(assets):
    capture = cv2.VideoCapture(str(assets / "videos/one-by-one-person-detection.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 120)
    ok, frame = capture.read()
    assert ok
    return [frame, cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_CUBIC),
            cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC)]


def test_class_map_of_real_logits(assets, people):
    session = ort.InferenceSession(str(assets / "models/segmentation/espnetv2_s1.0_voc21_384x384.onnx"),
                                   providers=["CPUExecutionProvider"])
    tensor = np.zeros(ESPNET.shape, np.float32)
    transform = Preprocessor(ESPNET)(people, tensor)
    logits = session.run(None, {"image": tensor})[0][0]
    out = np.empty(people.shape[:2], np.uint8)
    ClassMap(21, 384, 384)(logits, transform, out)
    expected = cv2.resize(np.argmax(logits, axis=0).astype(np.uint8), people.shape[1::-1],
                          interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(out, expected)
    assert 0.2 < (out == 15).mean() < 0.45  # VOC 15 = person: the MANIFEST saw about 30 % of the pixels


def test_letterbox_padding_is_cropped_before_resizing():
    logits = np.zeros((4, 8, 8), np.float32)
    logits[3, :4, :] = 1.0  # the content (top half of a letterboxed input) is class 3
    logits[2, 4:, :] = 1.0  # the padding below it would be class 2
    transform = Transform(0.5, 0.5, 0.0, 0.0, (16, 8))  # a 16×8 frame fills the top 8×4 of the input
    out = np.empty((8, 16), np.uint8)
    ClassMap(4, 8, 8)(logits, transform, out)
    assert (out == 3).all()


def test_no_allocation_per_frame():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((21, 96, 96)).astype(np.float32)
    transform = Transform(96 / 320, 96 / 240, 0.0, 0.0, (320, 240))
    out = np.empty((240, 320), np.uint8)
    mapper = ClassMap(21, 96, 96)
    mapper(logits, transform, out)
    tracemalloc.start()
    for _ in range(5):
        mapper(logits, transform, out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20_000, f"{peak} bytes allocated"


def test_class_maps_are_uint8():
    with pytest.raises(ValueError, match="1 to 256 classes"):
        ClassMap(300, 8, 8)


def resample_as_the_kernel_does(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``resample_linear`` of kernels.cu in NumPy: the integer arithmetic applied to :func:`linear_taps`."""
    taps_x, taps_y = linear_taps(image.shape[1], width).astype(np.int64), linear_taps(image.shape[0], height)
    pixels = image.astype(np.int64)
    rows = pixels[:, taps_x[:, 0]] * taps_x[None, :, 2:3] + pixels[:, taps_x[:, 1]] * taps_x[None, :, 3:4]
    top, bottom = rows[taps_y[:, 0]] >> 4, rows[taps_y[:, 1]] >> 4
    weights = taps_y.astype(np.int64)[:, None, None]
    value = (((weights[..., 2] * top) >> 16) + ((weights[..., 3] * bottom) >> 16) + 2) >> 2
    return np.clip(value, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(416, 234), (640, 360), (416, 416), (384, 384), (1000, 700)])
def test_linear_taps_reproduce_opencv_inter_linear(frames, size):
    for frame in frames:
        expected = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        difference = np.abs(resample_as_the_kernel_does(frame, *size).astype(int) - expected)
        assert difference.max() <= 1
        assert (difference == 0).mean() > 0.999, f"{frame.shape} → {size}: {(difference > 0).mean():.2%} differ"


def test_linear_taps_at_scale_one_copy_the_frame(frames):
    frame = frames[0]
    np.testing.assert_array_equal(resample_as_the_kernel_does(frame, frame.shape[1], frame.shape[0]), frame)


@pytest.mark.parametrize("source, target", [((384, 216), (1920, 1080)), ((416, 234), (1280, 720)),
                                            ((384, 384), (640, 480)), ((512, 512), (100, 37))])
def test_nearest_index_reproduces_opencv_inter_nearest(source, target):
    class_map = np.random.default_rng(2).integers(0, 21, source[::-1], dtype=np.uint8)
    expected = cv2.resize(class_map, target, interpolation=cv2.INTER_NEAREST)
    picked = class_map[nearest_index(source[1], target[1])][:, nearest_index(source[0], target[0])]
    np.testing.assert_array_equal(picked, expected)

"""The host half of the GPU kernels, checked on the CPU: OpenCV's resampling taps (preprocessing) and the
segmentation decoder's nearest tables (the class map), against OpenCV itself and the decoder on real frames."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.bundle import InputSpec
from edge.decoders.segmentation import Window, nearest_tables
from edge.geometry import Transform
from edge.gpu.preprocess import linear_taps
from edge.preprocess import Preprocessor
from edge.runner import Runner

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


def gather(class_map: np.ndarray, spec: InputSpec, transform: Transform) -> np.ndarray:
    """What the GPU kernels compute: argmax over the whole output, then the nearest tables' pixels."""
    rows, cols = nearest_tables(Window.of(class_map.shape, spec, transform), transform)
    return class_map[np.ix_(rows, cols)]


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "letterbox-center", "square-pad"])
def test_the_decoder_gives_the_pixels_the_gpu_tables_give(espnet_bundle, frames, resize):
    """The softmax decoder (nearest) classifies only the frame's window; the GPU classifies the whole output
    and gathers with full-output tables. Both must give the same class for every frame pixel."""
    bundle = replace(espnet_bundle, decoder_args={"upsample": "nearest"},
                     input=replace(espnet_bundle.input, resize=resize))
    model = Runner(bundle)
    for frame in frames:
        (transform,) = model.prepare([frame])
        logits = model.backend.run(model.slot)[model.decoder.output]
        result = model.decoder({model.decoder.output: logits}, transform)
        expected = gather(logits[0].argmax(0).astype(np.uint8), bundle.input, transform)
        np.testing.assert_array_equal(result.class_map, expected)
        assert (result.class_map == 15).any()  # VOC 15: the person walking through


def test_letterbox_padding_never_reaches_the_frame():
    class_map = np.full((8, 8), 2, np.uint8)  # class 2 in the padding
    class_map[:4] = 3  # the content (top half of a letterboxed input) is class 3
    spec = replace(ESPNET, shape=(1, 3, 8, 8))
    transform = Transform(0.5, 0.5, 0.0, 0.0, (16, 8))  # a 16×8 frame fills the top 8×4 of the input
    assert (gather(class_map, spec, transform) == 3).all()


@pytest.mark.parametrize("source, target", [((384, 216), (1920, 1080)), ((416, 234), (1280, 720)),
                                            ((384, 384), (640, 480)), ((512, 512), (100, 37))])
def test_nearest_tables_of_a_stretch_are_opencv_inter_nearest_exact(source, target):
    """For a plain stretch the tables pick the output pixel under each frame pixel's centre, as
    cv2.INTER_NEAREST_EXACT does, except where a centre falls exactly on the border of two output pixels
    (both are nearest; OpenCV's fixed point takes the lower one)."""
    class_map = np.random.default_rng(2).integers(0, 21, source[::-1], dtype=np.uint8)
    spec = replace(ESPNET, shape=(1, 3, source[1], source[0]))
    transform = Transform(source[0] / target[0], source[1] / target[1], 0.0, 0.0, target)
    expected = cv2.resize(class_map, target, interpolation=cv2.INTER_NEAREST_EXACT)

    def off_border(axis: int) -> np.ndarray:
        return (2 * np.arange(target[axis]) + 1) * source[axis] % (2 * target[axis]) != 0

    clear = np.ix_(off_border(1), off_border(0))
    np.testing.assert_array_equal(gather(class_map, spec, transform)[clear], expected[clear])


def test_person_covers_a_third_of_the_people_image(assets, people):
    session = ort.InferenceSession(str(assets / "models/segmentation/espnetv2_s1.0_voc21_384x384.onnx"),
                                   providers=["CPUExecutionProvider"])
    tensor = np.zeros(ESPNET.shape, np.float32)
    transform = Preprocessor(ESPNET)(people, tensor)
    logits = session.run(None, {"image": tensor})[0][0]
    class_map = gather(logits.argmax(0).astype(np.uint8), ESPNET, transform)
    assert class_map.shape == people.shape[:2]
    assert 0.2 < (class_map == 15).mean() < 0.45  # VOC 15 = person: the MANIFEST saw about 30 % of the pixels


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

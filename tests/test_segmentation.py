"""Semantic segmentation: real models on real images, masks back at frame size through every resize mode,
and the masks saved per frame."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge.backends.base import TensorInfo
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.bundle.create import create_bundle
from edge.cli import main
from edge.decoders import DECODERS
from edge.graph import RunnerGraph
from edge.pipeline.messages import to_events
from edge.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessor
from edge.runner import Runner

PERSON = 15  # VOC


@pytest.fixture(scope="module")
def people(assets):
    return cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))


def test_espnet_person_mask_on_people_indoor(yolox_bundle, espnet_bundle, people):
    models = RunnerGraph([yolox_bundle, espnet_bundle])
    results = models(people)
    events = to_events(results, models.labels)
    fractions = events["espnetv2_voc"]["class_fractions"]
    assert 0.2 <= fractions["person"] <= 0.4, fractions  # MANIFEST: person ≈ 30 % of the pixels
    assert all(value > 0 for value in fractions.values())
    class_map = results["espnetv2_voc"].class_map
    assert class_map.shape == people.shape[:2] and class_map.dtype == np.uint8
    persons = [d for d in events["yolox_nano"]["detections"] if d["label"] == "person" and d["score"] >= 0.45]
    assert len(persons) == 4
    for person in persons:  # the mask covers much of every person YOLOX finds
        x1, y1, x2, y2 = np.round(person["box"]).astype(int)
        assert (class_map[y1:y2, x1:x2] == PERSON).mean() > 0.4, person
    outside = np.ones(class_map.shape, bool)
    for person in persons:
        x1, y1, x2, y2 = np.round(person["box"]).astype(int)
        outside[y1:y2, x1:x2] = False
    assert (class_map[outside] == PERSON).mean() < 0.05  # and little outside them


def test_nearest_and_bilinear_upsampling_agree(espnet_bundle, people):
    nearest = Runner(replace(espnet_bundle, decoder_args={"upsample": "nearest"}))(people)
    bilinear = Runner(replace(espnet_bundle, decoder_args={"upsample": "bilinear"}))(people)
    assert (nearest.class_map == bilinear.class_map).mean() > 0.97  # they differ along class edges only
    np.testing.assert_allclose(nearest.fractions(), bilinear.fractions(), atol=0.01)


def test_skin_clothes_hair_are_independent_masks(assets, yolox_bundle, tmp_path):
    bundle = create_bundle(assets / "models/segmentation/pan_mnv3small_skin_clothes_hair_512x512.onnx",
                           tmp_path / "parts", task="segmentation", decoder="sigmoid", name="parts",
                           labels=["skin", "clothes", "hair"], color="rgb", resize="stretch", mean=IMAGENET_MEAN,
                           std=IMAGENET_STD, thresholds=Thresholds(score=0.5, iou=0.45))
    models = RunnerGraph([yolox_bundle, bundle])
    image = cv2.imread(str(assets / "images/intel_frame_asl_person_upper_body.jpg"))
    results = models(image)
    fractions = to_events(results, models.labels)["parts"]["class_fractions"]
    assert set(fractions) == {"skin", "clothes", "hair"}
    assert fractions["clothes"] > fractions["skin"] > 0.02  # a hoodie, a face and two hands
    seg = results["parts"]
    assert seg.multi_label and seg.class_map.max() < 8  # bit k = class k
    (box,) = np.round(results["yolox_nano"].boxes[results["yolox_nano"].class_ids == 0]).astype(int)
    person = np.zeros(seg.class_map.shape, bool)
    person[box[1]:box[3], box[0]:box[2]] = True
    for k in range(3):  # the parts are on the person
        mask = (seg.class_map & (1 << k)) > 0
        assert (mask & person).sum() >= 0.8 * mask.sum()


def synthetic_bundle(spec: InputSpec, classes: int = 2) -> Bundle:
    return Bundle(root=None, name="synthetic", task="segmentation", decoder="softmax", input=spec,
                  labels=[f"c{i}" for i in range(classes)], thresholds=Thresholds(), files={}, provenance={},
                  decoder_args={"upsample": "nearest"})


@pytest.mark.parametrize("resize", ["letterbox", "letterbox-center", "stretch", "square-pad"])
@pytest.mark.parametrize("stride", [1, 4])
def test_masks_map_back_through_every_resize(resize, stride):
    """A rectangle of class 1 drawn into the frame comes back from model space at its frame position, and
    letterbox padding never reaches the frame, for outputs at the input's resolution and 4× coarser."""
    frame = np.zeros((432, 768, 3), np.uint8)  # not square: every resize mode places it differently
    x1, y1, x2, y2 = 300, 100, 500, 400
    frame[y1:y2, x1:x2] = 255
    spec = InputSpec("x", (1, 3, 256, 320), resize=resize, pad_value=0.0)
    canvas = np.empty(spec.shape, np.float32)
    transform = Preprocessor(spec)(frame, canvas)
    small = cv2.resize(canvas[0, 0], (spec.width // stride, spec.height // stride), interpolation=cv2.INTER_AREA)
    logits = np.stack([np.full_like(small, 128), small])[None]  # class 1 where the frame was white
    decoder = DECODERS["softmax"](synthetic_bundle(spec), [TensorInfo("logits", logits.shape, np.float32)])
    class_map = decoder({"logits": logits}, transform).class_map
    assert class_map.shape == frame.shape[:2]
    truth = frame[..., 0] > 0
    found = class_map == 1
    iou = (truth & found).sum() / (truth | found).sum()
    assert iou > (0.97 if stride == 1 else 0.9), iou


def test_save_masks_writes_the_class_map(yolox_bundle, espnet_bundle, assets, tmp_path):
    image = assets / "images/fastestdet_people_indoor.jpg"
    assert main(["replay", str(image), "--bundle", str(yolox_bundle.root), "--bundle", str(espnet_bundle.root),
                 "--out", str(tmp_path), "--save-masks"]) == 0
    mask = cv2.imread(str(tmp_path / "masks/espnetv2_voc/000000.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (480, 640) and mask.dtype == np.uint8
    (event,) = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    fractions = event["results"]["espnetv2_voc"]["class_fractions"]
    counts = np.bincount(mask.ravel(), minlength=21) / mask.size
    assert fractions["person"] == pytest.approx(counts[PERSON], abs=1e-6)
    assert not (tmp_path / "masks/yolox_nano").exists()  # a detector has no mask


def whole_frame_bilinear(logits: np.ndarray, decoder, transform) -> np.ndarray:
    """The bilinear path as it was (all C planes of the frame at once): the reference for the banded one."""
    from edge.decoders.segmentation import Window

    window = Window.of(logits.shape[2:], decoder.bundle.input, transform)
    planes = np.ascontiguousarray(logits[0][:, window.rows, window.cols].transpose(1, 2, 0))
    frame = cv2.warpAffine(planes, window.matrix, transform.source_size,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return decoder.classify(frame.reshape(*transform.source_size[::-1], -1), axis=2)


@pytest.mark.parametrize("name, classes", [("softmax", 21), ("sigmoid", 3), ("sigmoid", 11)])
def test_bilinear_in_bands_gives_the_whole_frame_classes(name, classes, monkeypatch):
    """Bands of a few rows (so that several, and a short last one, are needed) give the classes of
    interpolating the whole frame at once, for exclusive and independent classes."""
    from edge.decoders import segmentation

    monkeypatch.setattr(segmentation, "BAND_BYTES", 50_000)
    spec = InputSpec("x", (1, 3, 256, 320), resize="letterbox", pad_value=0.0)
    bundle = replace(synthetic_bundle(spec, classes), decoder=name, decoder_args={"upsample": "bilinear"},
                     thresholds=Thresholds(score=0.5))
    logits = np.random.default_rng(classes).normal(0, 1, (1, classes, 32, 40)).astype(np.float32)
    if name == "sigmoid":
        logits = 1 / (1 + np.exp(-logits))
    decoder = DECODERS[name](bundle, [TensorInfo("logits", logits.shape, np.float32)])
    transform = Preprocessor(spec)(np.zeros((433, 771, 3), np.uint8), np.empty(spec.shape, np.float32))
    for _ in range(2):  # the band buffer is reused on the second frame
        banded = decoder({"logits": logits}, transform).class_map
        reference = whole_frame_bilinear(logits, decoder, transform)
        assert banded.shape == (433, 771) and banded.dtype == reference.dtype
        assert (banded == reference).all()
        assert len(np.unique(banded)) > 2

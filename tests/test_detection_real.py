"""YOLOX-nano and UltraFace on real images and footage, through bundle create and replay as a user runs them."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.bundle import Thresholds
from edge.bundle.create import create_bundle
from edge.cli import main
from edge.decoders.nms import box_iou
from edge.runner import Runner

# MANIFEST.md, YOLOX-nano on images/fastestdet_people_indoor.jpg
MANIFEST_PERSONS = np.array([[83, 81, 245, 474], [249, 69, 341, 368], [369, 65, 465, 413], [148, 82, 254, 292]],
                            np.float32)


def read_events(folder):
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def test_people_indoor_four_persons_where_the_manifest_says(yolox_bundle, assets, tmp_path):
    image = assets / "images/fastestdet_people_indoor.jpg"
    assert main(["replay", str(image), "--bundle", str(yolox_bundle.root), "--out", str(tmp_path)]) == 0
    (event,) = read_events(tmp_path)
    persons = [d for d in event["results"]["yolox_nano"]["detections"]
               if d["label"] == "person" and d["score"] >= 0.45]
    assert len(persons) == 4
    iou = box_iou(np.array([p["box"] for p in persons], np.float32), MANIFEST_PERSONS)
    assert (iou.max(axis=0) >= 0.8).all(), iou  # every manifest person is found…
    assert (iou.max(axis=1) >= 0.8).all(), iou  # …and every found person is one of them


@pytest.mark.slow
def test_highway_cars_on_nearly_every_frame(yolox_bundle, assets, tmp_path):
    video = assets / "videos/bgslibrary_highway_traffic_320x240.avi"
    assert main(["replay", str(video), "--bundle", str(yolox_bundle.root), "--out", str(tmp_path),
                 "--no-video"]) == 0
    events = read_events(tmp_path)
    assert [e["frame"] for e in events] == list(range(748))  # every frame once, in order
    cars = [sum(d["label"] == "car" for d in e["results"]["yolox_nano"]["detections"]) for e in events]
    assert np.mean(np.array(cars) >= 1) >= 0.95
    assert np.median(cars) >= 3
    assert not (tmp_path / "annotated.mp4").exists()


def test_ultraface_through_the_boxes_decoder(assets, tmp_path):
    """An export that decodes its own boxes: normalised corner boxes + softmax scores with a background column."""
    (tmp_path / "labels.txt").write_text("background\nface\n")
    bundle = create_bundle(assets / "models/detection/ultraface_rfb_320x240.onnx", tmp_path / "ultraface",
                           task="detection", decoder="boxes", name="ultraface", resize="stretch", color="rgb",
                           mean=(127.0,), std=(128.0,), thresholds=Thresholds(score=0.7, iou=0.3),
                           labels=tmp_path / "labels.txt", decoder_args={"background_class": 0})
    faces = Runner(bundle)(cv2.imread(str(assets / "images/skimage_astronaut_eileen_collins.png")))
    assert len(faces) == 1 and bundle.label(int(faces.class_ids[0])) == "face"
    assert box_iou(faces.boxes, np.array([[178, 62, 269, 173]], np.float32))[0, 0] >= 0.6

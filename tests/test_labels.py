"""``--val``: the gate scores fp32 and int8 against the user's labels (COCO JSON, or images/ + masks/)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")

from calibration.gate import Gate  # noqa: E402
from calibration.labels import load_labels  # noqa: E402
from edge.errors import BadInputError  # noqa: E402

# The four people of the indoor photo, boxed by hand from the MANIFEST's checked detections (x1, y1, x2, y2).
PEOPLE = [[83, 81, 245, 474], [249, 69, 341, 368], [369, 65, 465, 413], [148, 82, 254, 292]]


def _coco(folder, assets, boxes):
    image = cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))
    (folder / "images").mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "images" / "indoor.png"), image)
    doc = {"images": [{"id": 7, "file_name": "indoor.png", "width": image.shape[1], "height": image.shape[0]}],
           "categories": [{"id": 1, "name": "person"}, {"id": 99, "name": "traffic cone"}],
           "annotations": [{"id": i, "image_id": 7, "category_id": 1, "iscrowd": 0,
                            "bbox": [x1, y1, x2 - x1, y2 - y1]} for i, (x1, y1, x2, y2) in enumerate(boxes)]}
    doc["annotations"].append({"id": 50, "image_id": 7, "category_id": 99, "iscrowd": 0, "bbox": [0, 0, 5, 5]})
    path = folder / "val.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_gate_scores_against_coco_labels(yolox_bundle, assets, tmp_path):
    """YOLOX-nano finds the four labelled people: a high real mAP@0.5 for fp32, the floor the gate takes; the
    category the bundle does not know is left out; boxes labelled elsewhere score fp32 low."""
    labels = load_labels(str(_coco(tmp_path, assets, PEOPLE)), yolox_bundle)
    assert len(labels.frames) == 1 and len(labels.truth[0].boxes) == 4
    assert set(labels.truth[0].class_ids.tolist()) == {yolox_bundle.labels.index("person")}
    gate = Gate(yolox_bundle, [], max_drop=0.01, labels=labels)
    assert gate.floor.metric == "class-aware mAP@0.5" and gate.floor.score > 0.7
    assert gate.passes(gate.score(yolox_bundle.file("model"))) and gate.basis.startswith("labels")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    moved = [[x1 + 300, y1, x2 + 300, y2] for x1, y1, x2, y2 in PEOPLE]
    assert Gate(yolox_bundle, [], 0.01, load_labels(str(_coco(wrong, assets, moved)), yolox_bundle)).floor.score < 0.3


def test_masks_folder_labels(espnet_bundle, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 15  # person
    mask[0, :] = 255  # not labelled
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), image)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    labels = load_labels(str(tmp_path), espnet_bundle)
    found = mask.copy()
    found[0, :] = 3  # unlabelled pixels do not count
    assert labels.score([found]).score == 1.0
    found[10:20, 20:40] = 0
    # background: 40 × 60 − 60 unlabelled − 400 person = 1940 pixels, 200 more called background
    assert labels.score([found]).score == pytest.approx((1940 / 2140 + 200 / 400) / 2)
    (tmp_path / "images" / "b.jpg").write_bytes((tmp_path / "images" / "a.jpg").read_bytes())
    with pytest.raises(BadInputError, match="b.jpg has no mask"):
        load_labels(str(tmp_path), espnet_bundle)


def test_labels_that_do_not_fit_are_one_clear_error(yolox_bundle, espnet_bundle, tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(BadInputError, match="not a COCO detection JSON"):
        load_labels(str(tmp_path / "bad.json"), yolox_bundle)
    (tmp_path / "other.json").write_text(json.dumps({"images": [], "annotations": [],
                                                     "categories": [{"id": 1, "name": "zebra crossing"}]}))
    with pytest.raises(BadInputError, match="none of .* is a label"):
        load_labels(str(tmp_path / "other.json"), yolox_bundle)
    with pytest.raises(BadInputError, match="images/ and masks/"):
        load_labels(str(tmp_path), espnet_bundle)

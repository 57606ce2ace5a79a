"""Several bundles on one frame: each frame decoded once, preprocessed once per input spec, dependencies between
bundles run in order, and a wrong ``needs`` is one line naming the field."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edge.bundle import Needs, load_bundle
from edge.cli import main
from edge.errors import BadInputError
from edge.graph import RunnerGraph
from edge.preprocess import Preprocessor
from tests.helpers.runs import write_frames


@pytest.fixture(scope="module")
def frames(assets, tmp_path_factory):
    """Five frames of the demo video, one every 60, as an image folder."""
    return write_frames(assets / "videos/one-by-one-person-detection.mp4", tmp_path_factory.mktemp("frames"),
                        range(0, 300, 60))


def copy_bundle(bundle, folder, **changes):
    shutil.copytree(bundle.root, folder)
    doc = json.loads((folder / "bundle.json").read_text())
    doc.update(changes)
    (folder / "bundle.json").write_text(json.dumps(doc))
    return folder


def test_three_bundles_one_event_line_per_frame(yolox_bundle, espnet_bundle, movenet_topdown_bundle, frames,
                                                tmp_path):
    assert main(["replay", str(frames), "--bundle", str(yolox_bundle.root), "--bundle", str(espnet_bundle.root),
                 "--bundle", str(movenet_topdown_bundle.root), "--out", str(tmp_path)]) == 0
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["frame"] for e in events] == list(range(5))
    for event in events:
        results = event["results"]
        assert list(results) == ["yolox_nano", "espnetv2_voc", "movenet_topdown"]
        persons = [d for d in results["yolox_nano"]["detections"] if d["label"] == "person"]
        assert len(results["movenet_topdown"]["poses"]) <= len(persons)
        assert sum(results["espnetv2_voc"]["class_fractions"].values()) == pytest.approx(1.0, abs=1e-4)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == summary["decoded_frames"] == 5  # decoded once, whatever the bundle count
    assert set(summary["per_bundle"]) == {"yolox_nano", "espnetv2_voc", "movenet_topdown"}
    for stats in summary["per_bundle"].values():
        assert stats["fps"] > 0 and set(stats["latency_ms"]) == {"preprocess", "infer", "postprocess", "total"}
    video = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_one_preprocessing_per_input_spec(yolox_bundle, espnet_bundle, assets, tmp_path, monkeypatch):
    twin = load_bundle(copy_bundle(yolox_bundle, tmp_path / "twin", name="yolox_twin"))
    calls = []
    original = Preprocessor.__call__

    def counted(self, image, out):
        calls.append(self.spec)
        return original(self, image, out)

    monkeypatch.setattr(Preprocessor, "__call__", counted)
    models = RunnerGraph([yolox_bundle, espnet_bundle, twin])
    image = cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))
    results = models(image)
    assert len(calls) == 2  # YOLOX's spec once for both YOLOX bundles, ESPNetv2's once
    ours, theirs = results["yolox_nano"], results["yolox_twin"]
    np.testing.assert_array_equal(ours.boxes, theirs.boxes)
    assert models.timings_by_model["yolox_twin"]["preprocess"] < models.timings_by_model["yolox_nano"]["preprocess"]
    assert sum(t["infer"] for t in models.timings_by_model.values()) == pytest.approx(models.timings["infer"])


@pytest.mark.parametrize(("needs", "bundles", "message"), [
    ({"detector": "yolo9000"}, ["yolox"], "field 'needs.detector': no bundle named 'yolo9000' in this run"),
    ({"detector": "espnetv2_voc"}, ["yolox", "espnet"], "'espnetv2_voc' is a segmentation bundle, not a detector"),
    ({"detector": "yolox_nano", "classes": ["persn"]}, ["yolox"], "'persn' is not a label of 'yolox_nano'"),
])
def test_needs_that_cannot_be_met_are_one_line(yolox_bundle, espnet_bundle, movenet_topdown_bundle, assets,
                                               tmp_path, capsys, needs, bundles, message):
    pose = copy_bundle(movenet_topdown_bundle, tmp_path / "pose", needs=needs)
    given = {"yolox": yolox_bundle.root, "espnet": espnet_bundle.root}
    args = [a for name in bundles for a in ("--bundle", str(given[name]))]
    code = main(["replay", str(assets / "images/fastestdet_people_indoor.jpg"), *args, "--bundle", str(pose),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and str(pose) in err[0], err


@pytest.mark.parametrize(("needs", "field"), [
    ({"detector": "a", "instances": "b"}, "field 'needs': name exactly one of detector, instances"),
    ({"instances": "maskrcnn"}, "field 'needs.instances': decoder 'movenet' takes only detector"),
    ({"detector": "a", "expand": 0.5}, "field 'needs.expand'"),
    ({"detector": "a", "crop": True}, "field 'needs.crop': unknown key"),
    ({"detector": "a", "max_crop": 4}, "field 'needs.max_crop': unknown key; did you mean 'max_crops'?"),
])
def test_needs_schema(movenet_topdown_bundle, tmp_path, needs, field):
    folder = copy_bundle(movenet_topdown_bundle, tmp_path / "pose", needs=needs)
    with pytest.raises(BadInputError, match=field.replace("(", r"\(")):
        load_bundle(folder)


def test_a_detector_cannot_take_needs(yolox_bundle, tmp_path):
    folder = copy_bundle(yolox_bundle, tmp_path / "yolox", needs={"detector": "other"})
    with pytest.raises(BadInputError, match="decoder 'yolox' runs on whole frames only"):
        load_bundle(folder)


def test_bundle_create_writes_needs(assets, tmp_path):
    out = tmp_path / "movenet_topdown"
    onnx = assets / "models/pose/movenet_singlepose_lightning_int8_192x192.onnx"
    assert main(["bundle", "create", "--onnx", str(onnx),
                 "--task", "pose", "--decoder", "movenet", "--color", "rgb", "--resize", "stretch",
                 "--needs", "detector=yolox_nano", "--needs", 'classes=["person"]', "--needs", "expand=1.3",
                 "--out", str(out)]) == 0
    assert load_bundle(out).needs == Needs(detector="yolox_nano", classes=("person",), expand=1.3)

"""Bad input ends in one clear line on stderr naming the culprit, and the contract's exit code (3)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from edge.bundle import load_bundle
from edge.cli import main
from edge.errors import BadInputError


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(err, *needles):
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edge: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def bundle_copy(yolox_bundle, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(yolox_bundle.root, folder)
    return folder


def edit_bundle_json(folder, change):
    doc = json.loads((folder / "bundle.json").read_text())
    change(doc)
    (folder / "bundle.json").write_text(json.dumps(doc))


def test_missing_source_file(capsys, yolox_bundle, tmp_path):
    code, err = run(capsys, "replay", tmp_path / "nope.mp4", "--bundle", yolox_bundle.root, "--out", tmp_path / "o")
    assert code == 3
    assert_one_line(err, "nope.mp4", "no such file")


def test_corrupt_video(capsys, yolox_bundle, tmp_path):
    video = tmp_path / "corrupt.mp4"
    video.write_bytes(os.urandom(50_000))
    code, err = run(capsys, "replay", video, "--bundle", yolox_bundle.root, "--out", tmp_path / "o")
    assert code == 3
    assert_one_line(err, "corrupt.mp4", "cannot open")


def test_truncated_video_keeps_what_was_decoded(capsys, yolox_bundle, assets, tmp_path):
    data = (assets / "videos/bgslibrary_highway_traffic_320x240.avi").read_bytes()
    video = tmp_path / "truncated.avi"
    video.write_bytes(data[: len(data) // 4])
    out = tmp_path / "o"
    code, err = run(capsys, "replay", video, "--bundle", yolox_bundle.root, "--out", out)
    assert code == 3
    assert_one_line(err, "truncated.avi", "truncated or corrupt")
    lines = (out / "events.jsonl").read_text().splitlines()
    assert len(lines) > 50 and all(json.loads(line)["frame"] == i for i, line in enumerate(lines))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == len(lines) and "truncated" in summary["error"]
    import cv2

    written = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == len(lines)  # finalised, playable


def test_missing_bundle_folder(capsys, assets, tmp_path):
    code, err = run(capsys, "replay", assets / "images/fastestdet_people_indoor.jpg", "--bundle",
                    tmp_path / "nobundle", "--out", tmp_path / "o")
    assert code == 3
    assert_one_line(err, "nobundle", "not found")


def test_tampered_onnx_fails_the_sha256(capsys, bundle_copy, assets, tmp_path):
    model = bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    code, err = run(capsys, "replay", assets / "images/fastestdet_people_indoor.jpg", "--bundle", bundle_copy,
                    "--out", tmp_path / "o")
    assert code == 3
    assert_one_line(err, "model.onnx", "sha256 mismatch")


def test_truncated_onnx_fails_the_sha256(bundle_copy):
    model = bundle_copy / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(BadInputError, match="model.onnx: sha256 mismatch"):
        load_bundle(bundle_copy)


def test_corrupt_onnx_given_to_bundle_create(capsys, tmp_path):
    onnx = tmp_path / "broken.onnx"
    onnx.write_bytes(b"\x08\x07" + os.urandom(2000))
    code, err = run(capsys, "bundle", "create", "--onnx", onnx, "--task", "detection", "--decoder", "yolox",
                    "--out", tmp_path / "b")
    assert code == 3
    assert_one_line(err, "broken.onnx", "cannot load")


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["input"].update(layout="chw"), "input.layout"),
    (lambda d: d["input"].update(shape=[1, 3, 416]), "input.shape"),
    (lambda d: d["input"].update(mean=[0, 0]), "input.mean"),
    (lambda d: d["input"].pop("color"), "input"),
    (lambda d: d.update(task="tracking"), "task"),
    (lambda d: d.update(decoder="yolo9000"), "decoder"),
    (lambda d: d.update(decoder="boxes"), "no output 'boxes'"),
    (lambda d: d.update(decoder="ssd"), "field 'files.anchors' is required by decoder 'ssd'"),
    (lambda d: d["thresholds"].update(score=1.5), "thresholds.score"),
    (lambda d: d.update(labels="person"), "labels"),
    (lambda d: d["files"]["model"].update(path="../../etc/passwd"), "files.model.path"),
    (lambda d: d["input"].update(name="input"), "input.name"),
    (lambda d: d.update(schema=99), "schema"),
])
def test_wrong_bundle_field_is_named(capsys, bundle_copy, assets, tmp_path, change, field):
    edit_bundle_json(bundle_copy, change)
    code, err = run(capsys, "replay", assets / "images/fastestdet_people_indoor.jpg", "--bundle", bundle_copy,
                    "--out", tmp_path / "o")
    assert code == 3
    assert_one_line(err, str(bundle_copy), field)


def test_bundle_json_not_json(capsys, bundle_copy, assets, tmp_path):
    (bundle_copy / "bundle.json").write_text("{ not json")
    code, err = run(capsys, "replay", assets / "images/fastestdet_people_indoor.jpg", "--bundle", bundle_copy,
                    "--out", tmp_path / "o")
    assert code == 3
    assert_one_line(err, "bundle.json", "not valid JSON")


def test_usage_errors_exit_2(capsys, yolox_bundle, assets, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", "--bundle", str(yolox_bundle.root)])
    assert exit_info.value.code == 2
    capsys.readouterr()
    code, err = run(capsys, "replay", assets / "images/fastestdet_people_indoor.jpg", "--bundle", yolox_bundle.root,
                    "--bundle", yolox_bundle.root, "--out", tmp_path / "o")
    assert code == 2
    assert_one_line(err, "two bundles are named 'yolox_nano'")

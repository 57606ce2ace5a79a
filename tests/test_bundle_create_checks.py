"""``edge bundle create`` refuses what does not fit before writing anything (issue 13, defects 7, 9 and 10):
labels against the model, the user's flags (exit 2, naming the flag), an existing bundle; and a failure
leaves no half-made bundle."""

from __future__ import annotations

import json
import shutil

import pytest

from edge import demo
from edge.cli import main

COCO80 = "models/detection/coco80.names"


def create(capsys, assets, out, *more):
    argv = ["bundle", "create", "--onnx", str(assets / demo.YOLOX), "--task", "detection", "--decoder", "yolox",
            "--out", str(out), "--color", "bgr", *map(str, more)]
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def one_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge: error: "), err
    return lines[0]


def labels_file(tmp_path, lines):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda names: names + ["extra1", "extra2"], "82 labels for an output of 80 classes"),
    (lambda names: names[:40], "40 labels for an output of 80 classes"),
    (lambda names: [], "the file holds no label"),
    (lambda names: names[:10] + [""] + names[11:], ":11: blank line"),
])
def test_labels_that_do_not_fit_the_model_are_refused(capsys, assets, tmp_path, change, message):
    names = (assets / COCO80).read_text().splitlines()
    path = labels_file(tmp_path, change(names))
    code, err = create(capsys, assets, tmp_path / "b", "--labels", path)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"edge: error: --labels {path}") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt"]  # nothing half-made left


def test_a_bundle_whose_labels_do_not_fit_its_model_does_not_load(capsys, yolox_bundle, assets, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(yolox_bundle.root, folder)
    doc = json.loads((folder / "bundle.json").read_text())
    doc["labels"] = doc["labels"][:65]
    (folder / "bundle.json").write_text(json.dumps(doc))
    code = main(["replay", str(assets / "images/fastestdet_people_indoor.jpg"), "--bundle", str(folder),
                 "--out", str(tmp_path / "o")])
    assert code == 3
    assert "65 labels for an output of 80 classes" in one_line(capsys.readouterr().err.strip())


@pytest.mark.parametrize(("flags", "message"), [
    (["--mean", "1,2"], "--mean: expected 1 value or 3"),
    (["--std", "0"], "--std: every value must be positive"),
    (["--std", "1,-1,1"], "--std: every value must be positive"),
    (["--score", "5"], "--score: expected a value from 0 to 1, not 5"),
    (["--iou", "-0.1"], "--iou: expected a value from 0 to 1, not -0.1"),
    (["--pad-value", "300"], "--pad-value: expected a pixel value from 0 to 255"),
    (["--input-size", "640x480"], "--input-size 640x480: the model's input 'images' is fixed"),
    (["--task", "segmentation"], "--decoder yolox: decodes detection outputs, not --task segmentation"),
    (["--decoder", "movenet"], "--decoder movenet: decodes pose outputs, not --task detection"),
])
def test_usage_mistakes_exit_2_and_name_the_flag(capsys, assets, tmp_path, flags, message):
    code, err = create(capsys, assets, tmp_path / "b", *flags)
    assert code == 2
    assert message in one_line(err), err
    assert not (tmp_path / "b").exists()


def test_a_decoder_that_does_not_fit_the_outputs_leaves_nothing(capsys, assets, tmp_path):
    code, err = create(capsys, assets, tmp_path / "b", "--task", "segmentation", "--decoder", "softmax")
    assert code == 2
    assert one_line(err).startswith("edge: error: --decoder softmax: ")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_bundle_is_replaced_only_with_overwrite(capsys, assets, tmp_path):
    out = tmp_path / "b"
    assert create(capsys, assets, out, "--name", "first")[0] == 0
    code, err = create(capsys, assets, out, "--name", "second")
    assert code == 2
    assert "--out: " in one_line(err) and "--overwrite" in err
    assert json.loads((out / "bundle.json").read_text())["name"] == "first"
    assert create(capsys, assets, out, "--name", "second", "--overwrite")[0] == 0
    assert json.loads((out / "bundle.json").read_text())["name"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # nothing left beside it

"""``edge bundle info`` and ``edge bundle validate`` on real bundles and on broken copies of them."""

from __future__ import annotations

import json
import shutil

from edge.bundle import load_bundle
from edge.cli import main
from edge.engines import EngineOptions, EngineTag, ProfileShape, Target, engine_folder, write_engine


def copy(bundle, tmp_path, name="copy"):
    shutil.copytree(bundle.root, tmp_path / name)
    return tmp_path / name


def test_info_shows_what_the_bundle_says(yolox_bundle, tmp_path, capsys):
    folder = copy(yolox_bundle, tmp_path)
    doc = json.loads((folder / "bundle.json").read_text())
    doc["compile"] = {"model": "yolox_nano", "prune": {"ratio": 0.3}, "report": [{"stage": "original"}]}
    (folder / "bundle.json").write_text(json.dumps(doc))
    shape = (1, 3, 416, 416)
    tag = EngineTag("yolox_nano", doc["files"]["model"]["sha256"], Target("10.3.0", "8.7", "Orin"),
                    EngineOptions("fp16"), (ProfileShape("images", shape, shape, shape),))
    engine = write_engine(engine_folder(load_bundle(folder)), tag, b"not a real plan")
    assert main(["bundle", "info", str(folder)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("yolox_nano: detection, decoder yolox, precision fp32\n")
    assert "labels      80: person, bicycle, car," in text and "(80 in all)" in text
    assert "thresholds  score 0.3, iou 0.45, max_detections 300" in text
    assert "file        model: model.onnx (3.5 MiB, sha256 695e750a5d57…)" in text
    assert f"engine      {engine.name} (fp16, TensorRT 10.3.0, Orin)" in text
    assert "  compile:\n    model: yolox_nano\n    prune: {\"ratio\": 0.3}" in text
    assert main(["bundle", "info", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["files"]["model"]["bytes"] == (folder / "model.onnx").stat().st_size
    assert shown["engines"][0]["file"] == engine.name and shown["compile"]["prune"] == {"ratio": 0.3}


def test_validate_a_good_bundle(yolox_bundle, capsys):
    assert main(["bundle", "validate", str(yolox_bundle.root)]) == 0
    assert capsys.readouterr().out.strip() == (
        "bundle 'yolox_nano' is valid: bundle.json, 1 file(s) (model) match their sha256, decoder 'yolox' reads the "
        "model's outputs, one frame ran on onnxruntime (fp32)")


def test_validate_fails_with_one_line_and_exit_3(yolox_bundle, espnet_bundle, tmp_path, capsys):
    truncated = copy(yolox_bundle, tmp_path, "truncated")
    model = truncated / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    assert main(["bundle", "validate", str(truncated)]) == 3
    assert "sha256 mismatch" in capsys.readouterr().err
    # a segmentation model declared a YOLOX detector: bundle.json loads, the model's output does not fit
    wrong = copy(espnet_bundle, tmp_path, "wrong")
    doc = json.loads((wrong / "bundle.json").read_text())
    (wrong / "bundle.json").write_text(json.dumps({**doc, "task": "detection", "decoder": "yolox"}))
    assert main(["bundle", "validate", str(wrong)]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge: error: ") and "decoder 'yolox': expected an output [1, N, 5 + classes]" in err
    assert "\n" not in err
    assert main(["bundle", "info", str(tmp_path / "missing")]) == 3

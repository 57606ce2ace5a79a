"""Distillation on footage: the student's agreement with the teacher on held-out frames improves over the
pruned-but-undistilled student; an interrupted run resumes from its last epoch checkpoint and ends with
exactly the weights of an uninterrupted run; the command's usage errors are one line with exit code 2.

The agreement test needs a teacher with real weights (a random network's outputs are near-uniform, and
agreement between ties means nothing): MTCNN's O-Net, distilled on the crops the cascade shows it in the
shared footage, measured as face / not-face top-1 agreement on held-out crops.
"""

from __future__ import annotations

import json

import cv2
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

import compile.distill as distill_module  # noqa: E402
from calibration.frames import sample_frames  # noqa: E402
from compile.mtcnn import candidate_crops  # noqa: E402
from edge.bundle import sha256_file  # noqa: E402
from edge.cli import main  # noqa: E402

HIGHWAY = "videos/bgslibrary_highway_traffic_320x240.avi"
FACES = ("images", "videos/face-demographics-walking.gif", "videos/asl_again_person_upper_body.mkv")


@pytest.fixture(scope="module")
def face_crops(assets, mtcnn_bundle, tmp_path_factory):
    """A folder of O-Net's inputs from real footage: the cascade's candidates (faces and near-misses)."""
    frames = [f.image for f in sample_frames([str(assets / source) for source in FACES], 80)]
    folder = tmp_path_factory.mktemp("face_crops")
    for i, crop in enumerate(candidate_crops(mtcnn_bundle, frames)):
        cv2.imwrite(str(folder / f"{i:04d}.png"), crop)
    return folder


def test_distillation_raises_agreement_over_the_pruned_student(assets, face_crops, tmp_path):
    out = tmp_path / "onet"
    assert main(["compile", "--model", "mtcnn_onet", "--task", "classification",
                 "--checkpoint", str(assets / "models/detection/mtcnn_onet.pt"), "--prune", "0.5",
                 "--distill", str(face_crops), "--frames", "200", "--epochs", "8", "--batch", "16", "--lr", "2e-3",
                 "--seed", "0", "--device", "cpu", "--out", str(out)]) == 0
    block = json.loads((out / "bundle.json").read_text())["compile"]
    original, pruned, reconstructed, distilled = block["report"]["rows"]
    assert original["agreement"] == 1.0 and pruned["macs"] < 0.4 * original["macs"]
    assert reconstructed["macs"] == distilled["macs"] == pruned["macs"]
    assert block["report"]["holdout_frames"] >= 20 and block["report"]["metric"] == "top-1"
    assert pruned["agreement"] < 0.9, "pruning alone should cost agreement, or there is nothing to recover"
    assert distilled["agreement"] >= pruned["agreement"] + 0.05, block["report"]["rows"]
    losses = block["distillation"]["epoch_losses"]
    assert losses[-1] < losses[0] and block["distillation"]["device"] == "cpu"
    assert set(block["pruning"]["kept_layers"]) == {"network.dense6_1", "network.dense6_2", "network.dense6_3"}


def test_distillation_raises_yolox_agreement_over_the_pruned_student(assets, tmp_path):
    """YOLOX-nano (real COCO weights, BatchNorm folded into its convolutions) loses every detection to pruning
    30 % of its channels; the distillation pipeline (least-squares reconstruction of the pruned layers, then a
    short distillation) on real highway footage brings its boxes back, scored by the gate's class-agnostic mAP."""
    out = tmp_path / "yolox"
    assert main(["compile", "--model", str(assets / "models/detection/yolox_nano_416x416.onnx"), "--task", "detection",
                 "--decoder", "yolox", "--labels", str(assets / "models/detection/coco80.names"), "--color", "bgr",
                 "--resize", "letterbox", "--pad-value", "114", "--prune", "0.3", "--distill", str(assets / HIGHWAY),
                 "--frames", "12", "--epochs", "1", "--batch", "8", "--lr", "1e-5", "--out", str(out)]) == 0
    report = json.loads((out / "bundle.json").read_text())["compile"]["report"]
    pruned, reconstructed, distilled = (row["details"]["class-agnostic mAP@0.5"][0] for row in report["rows"][1:])
    assert report["rows"][1]["macs"] <= 0.6 * report["rows"][0]["macs"]
    assert pruned < 0.1, "pruning alone loses the boxes, or there is nothing to recover"
    assert distilled >= pruned + 0.2, report["rows"]
    assert report["noise_floor"]["score"] > 0.8


def compile_args(assets, out, *extra: str) -> list[str]:
    return ["compile", "--model", "mobilenet_v3_small", "--task", "classification", "--input-size", "64x64",
            "--prune", "0.5", "--prune-importance", "taylor", "--distill", str(assets / HIGHWAY),
            "--frames", "20", "--epochs", "2", "--batch", "8", "--seed", "3", "--threads", "1", "--out", str(out),
            *extra]


def test_an_interrupted_run_resumes_to_the_same_weights(assets, tmp_path, monkeypatch):
    assert main(compile_args(assets, tmp_path / "straight")) == 0

    save = distill_module.save_checkpoint

    def save_then_stop(path, state):
        save(path, state)
        raise KeyboardInterrupt  # as if the machine went down right after epoch 1's checkpoint

    monkeypatch.setattr(distill_module, "save_checkpoint", save_then_stop)
    assert main(compile_args(assets, tmp_path / "interrupted")) == 130
    monkeypatch.setattr(distill_module, "save_checkpoint", save)
    assert main(compile_args(assets, tmp_path / "interrupted", "--resume")) == 0

    straight, resumed = (json.loads((tmp_path / run / "bundle.json").read_text())["compile"]
                         for run in ("straight", "interrupted"))
    assert resumed["distillation"]["resumed_at_epoch"] == 1
    assert resumed["distillation"]["epoch_losses"] == straight["distillation"]["epoch_losses"][1:]
    assert resumed["pruning"]["history"] == straight["pruning"]["history"]
    assert sha256_file(tmp_path / "interrupted" / "model.onnx") == sha256_file(tmp_path / "straight" / "model.onnx")


@pytest.mark.parametrize("extra, message", [
    (["--prune", "1.5"], "pruning ratio must be between 0 and 1"),
    (["--prune", "0.5", "--prune-importance", "taylor"], "needs frames for its gradients"),
])
def test_bad_compress_options_are_usage_errors(tmp_path, capsys, extra, message):
    args = ["compile", "--model", "resnet18", "--task", "classification", "--out", str(tmp_path), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_pruned_onet_goes_back_into_an_mtcnn_bundle(assets, tmp_path):
    """``--model mtcnn --prune``: O-Net pruned and distilled on the cascade's candidates, exported with a dynamic
    batch into a cascade bundle that runs, with O-Net's report and the whole cascade's agreement."""
    from edge.backends.onnxruntime import open_session
    from edge.bundle import load_bundle
    from edge.runner import Runner

    checkpoints = [f"--checkpoint={net}={assets / f'models/detection/mtcnn_{net}.pt'}"
                   for net in ("pnet", "rnet", "onet")]
    out = tmp_path / "mtcnn"
    assert main(["compile", "--model", "mtcnn", "--task", "detection", *checkpoints, "--prune", "0.5",
                 "--distill", *(str(assets / source) for source in FACES), "--frames", "40", "--epochs", "2",
                 "--batch", "16", "--threads", "1", "--out", str(out)]) == 0
    bundle = load_bundle(out)
    assert bundle.decoder == "mtcnn" and set(bundle.files) == {"pnet", "rnet", "onet"}
    onet = open_session(bundle.file("onet"))
    assert onet.get_inputs()[0].shape[0] == "n" and {o.name for o in onet.get_outputs()} == {
        "face_prob", "bbox_reg", "landmarks"}
    block = bundle.extra["compile"]
    original, pruned = block["report"]["rows"][:2]
    assert pruned["params"] < 0.4 * original["params"]
    assert block["cascade"]["frames"] >= 5 and 0 <= block["cascade"]["score"] <= 1
    model = Runner(bundle, "onnxruntime")
    try:
        model(cv2.imread(str(assets / "images/skimage_astronaut_eileen_collins.png")))
    finally:
        model.close()

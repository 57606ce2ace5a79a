"""Distillation on footage: the student's agreement with the teacher on held-out frames improves over the
pruned-but-undistilled student; an interrupted run resumes from its last epoch checkpoint and ends with
exactly the weights of an uninterrupted run; the command's usage errors are one line with exit code 2.

The agreement test needs a teacher with real weights (a random network's outputs are near-uniform, and
agreement between ties means nothing): MTCNN's O-Net, distilled on the crops the cascade shows it in the
shared footage, measured as face / not-face top-1 agreement on held-out crops.
"""

from __future__ import annotations

import json
import math

import cv2
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

import compile.distill as distill_module  # noqa: E402
from calibration.frames import sample_frames  # noqa: E402
from compile.mtcnn import candidate_crops  # noqa: E402
from edge.bundle import sha256_file  # noqa: E402
from edge.cli import main  # noqa: E402
from tests.helpers.yolox import found_again  # noqa: E402

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
    assert all(row["latency_ms"] > 0 for row in block["report"]["rows"])  # every stage timed, in turns, at the end
    assert block["report"]["holdout_frames"] >= 20 and block["report"]["metric"] == "top-1"
    assert pruned["agreement"] < 0.9, "pruning alone should cost agreement, or there is nothing to recover"
    assert distilled["agreement"] >= pruned["agreement"] + 0.05, block["report"]["rows"]
    losses = block["distillation"]["epoch_losses"]
    assert losses[-1] < losses[0] and block["distillation"]["device"] == "cpu"
    assert set(block["pruning"]["kept_layers"]) == {"network.dense6_1", "network.dense6_2", "network.dense6_3"}


def test_distillation_raises_yolox_agreement_over_the_pruned_student(assets, tmp_path):
    """YOLOX-nano (real COCO weights, BatchNorm folded into its convolutions) loses every detection to pruning
    30 % of its channels; the distillation pipeline (channels ranked by contribution, least-squares
    reconstruction of the pruned layers, then a short distillation at the default rate, relative to each
    tensor's scale, on canvases without the letterbox's grey band) on real highway footage brings its boxes
    back, scored by the gate's class-agnostic mAP on the model's full input."""
    out = tmp_path / "yolox"
    assert main(["compile", "--model", str(assets / "models/detection/yolox_nano_416x416.onnx"), "--task", "detection",
                 "--decoder", "yolox", "--labels", str(assets / "models/detection/coco80.names"), "--color", "bgr",
                 "--resize", "letterbox", "--pad-value", "114", "--prune", "0.3", "--prune-importance", "contribution",
                 "--distill", str(assets / HIGHWAY), "--frames", "12", "--epochs", "1", "--batch", "8", "--rect",
                 "--out", str(out)]) == 0
    block = json.loads((out / "bundle.json").read_text())["compile"]
    report = block["report"]
    assert block["distillation"]["canvas"] == [416, 320]  # 320x240 footage letterboxed to 416x312
    pruned, reconstructed, distilled = (row["details"]["class-agnostic mAP@0.5"][0] for row in report["rows"][1:])
    assert report["rows"][1]["macs"] <= 0.6 * report["rows"][0]["macs"]
    assert pruned < 0.1, "pruning alone loses the boxes, or there is nothing to recover"
    assert reconstructed >= pruned + 0.3 and distilled >= pruned + 0.3, report["rows"]
    assert report["noise_floor"]["score"] > 0.8


def test_one_step_at_the_default_rate_leaves_a_folded_yolox_detecting(yolox_bundle, highway_frames,
                                                                        yolox_highway_batch):
    """YOLOX-nano's BatchNorm is folded into its convolutions, so weight scales differ by orders of magnitude
    (its stem reads 0..255 pixels: weights ~1e-3). Adam moves every element by about the learning rate, so
    one plain step at 1e-3 rewrites the stem; the per-tensor rate relative to each tensor's scale
    (norm-free students only) keeps a student that starts as the teacher detecting what the teacher does."""
    from compile.augment import Augment
    from compile.distill import DistillConfig, Distiller
    from compile.families import bundle_network
    from compile.losses import task_loss

    teacher, student = bundle_network(yolox_bundle), bundle_network(yolox_bundle)
    config = DistillConfig(sources=("highway",), epochs=1, batch=8, lr=1e-3, views=0, threads=1)
    augment = Augment(teacher.input, mixup=False)
    loss = task_loss("yolox", config.temperature, [(1, 3549, 85)], (416, 416))
    distiller = Distiller(teacher.module, student.module, loss, augment, config, lambda name: False)
    distiller.fit(highway_frames)
    assert distiller.history[0]["steps"] == 1
    assert found_again(student.module.eval(), teacher.module, yolox_highway_batch) >= 0.9


class TwoConvs(torch.nn.Module):
    """A small norm-free network (or with BatchNorm between its convolutions) whose weights differ 100× in scale."""

    def __init__(self, norm: bool):
        super().__init__()
        self.first, self.second = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1)
        self.norm = torch.nn.BatchNorm2d(4) if norm else torch.nn.Identity()
        with torch.no_grad():
            self.first.weight.mul_(0.01)

    def forward(self, x):
        return (self.second(torch.relu(self.norm(self.first(x)))).mean((2, 3)),)


# The factor at the last step of each of 4 epochs of 4 steps (steps 3, 7, 11, 15 of 16).
SCHEDULED = {"cosine": [0.5 * (1 + math.cos(math.pi * step / 16)) for step in (3, 7, 11, 15)],
             "wsd": [1.0, 1.0, 1.0, (1 - 15 / 16) / 0.2]}


@pytest.mark.parametrize("norm, schedule", [(False, "cosine"), (True, "cosine"), (True, "wsd")])
def test_rates_are_relative_to_each_tensor_without_normalisation_and_follow_the_schedule(norm, schedule):
    from compile.distill import DistillConfig, Distiller
    from compile.losses import LogitLoss

    torch.manual_seed(0)
    teacher, student = TwoConvs(norm).eval(), TwoConvs(norm)
    config = DistillConfig(sources=("tensors",), epochs=4, batch=2, lr=1e-2, views=0, threads=1, schedule=schedule)
    distiller = Distiller(teacher, student, LogitLoss(1.0), torch.stack, config, lambda name: False)
    scales = [float(p.detach().pow(2).mean().sqrt()) for p in student.parameters()]
    seen = []
    distiller.fit([torch.randn(3, 8, 8) for _ in range(8)], on_epoch=lambda record: seen.append(
        [group["lr"] for group in distiller.optimizer.param_groups]))
    first = distiller.optimizer.param_groups
    if norm:
        assert len(first) == 1 and first[0]["initial_lr"] == 1e-2
    else:
        assert [group["initial_lr"] for group in first] == pytest.approx([1e-2 * max(s, 1e-3) for s in scales],
                                                                          rel=1e-6)
    assert [rates[0] / first[0]["initial_lr"] for rates in seen] == pytest.approx(SCHEDULED[schedule], rel=1e-6)


def test_the_warmup_raises_the_rate_step_by_step_across_epochs():
    from compile.distill import DistillConfig, Distiller
    from compile.losses import LogitLoss

    torch.manual_seed(0)
    teacher, student = TwoConvs(True).eval(), TwoConvs(True)
    config = DistillConfig(sources=("tensors",), epochs=2, batch=2, lr=1e-2, views=0, threads=1, warmup_steps=6)
    distiller = Distiller(teacher, student, LogitLoss(1.0), torch.stack, config, lambda name: False)
    rates, step = [], distiller._step

    def recording(*batch):
        loss = step(*batch)
        rates.append(distiller.optimizer.param_groups[0]["lr"])
        return loss

    distiller._step = recording
    distiller.fit([torch.randn(3, 8, 8) for _ in range(8)])  # 4 steps an epoch
    assert rates == pytest.approx([1e-2 * n / 6 for n in (1, 2, 3, 4, 5, 6)] + [1e-2] * 2, rel=1e-6)


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
    (["--prune", "0.5", "--prune-importance", "taylor"], "needs frames to measure on"),
    (["--prune", "0.5", "--prune-importance", "contribution"], "needs frames to measure on"),
    (["--prune", "0.5", "--prune-macs", "0.6"], "--prune-macs: needs frames"),
    (["--prune", "0.5", "--prune-macs", "1.5", "--distill", "x.mp4"], "the MAC budget is a share"),
    (["--prune", "0.5", "--prune-round-to", "0"], "channel counts round to a multiple of 1 or more"),
    (["--distill", "x.mp4", "--lr-warmup", "-1"], "warmup steps must be 0 (none) or more"),
])
def test_bad_compress_options_are_usage_errors(tmp_path, capsys, extra, message):
    args = ["compile", "--model", "resnet18", "--task", "classification", "--out", str(tmp_path), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_rect_on_a_model_without_a_letterbox_is_a_usage_error(assets, tmp_path, capsys):
    args = ["compile", "--model", "resnet18", "--task", "classification", "--distill", str(assets / HIGHWAY),
            "--frames", "4", "--rect", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--rect crops a letterbox's grey bands" in err and len(err.strip().splitlines()) == 1


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

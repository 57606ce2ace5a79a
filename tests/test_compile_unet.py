"""``edge compile --model unet``: segmentation_models_pytorch's U-Net exported with the sigmoid (one class) or
softmax decoder; the ONNX model computes what PyTorch computes on real frames (random weights, live
activations); both of smp's checkpoint forms load; the bundle replays footage; the U-Net prunes and keeps its
output shape."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
smp = pytest.importorskip("segmentation_models_pytorch")

from compile.compress import compress  # noqa: E402
from compile.families import unet_network  # noqa: E402
from compile.prune import PruneConfig  # noqa: E402
from compile.unet import network_parts  # noqa: E402
from edge.backends.onnxruntime import open_session  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.preprocess import Preprocessor  # noqa: E402

SIZE = "128x96"


@pytest.fixture(scope="module")
def frames(assets):
    return [cv2.imread(str(assets / f"images/{name}")) for name in
            ("fastestdet_people_indoor.jpg", "bgslibrary_frame_highway_traffic.png")]


def compile_unet(tmp_path, *extra: str):
    out = tmp_path / "unet"
    assert main(["compile", "--model", "unet_resnet18", "--task", "segmentation", "--input-size", SIZE,
                 "--out", str(out), *extra]) == 0
    return load_bundle(out)


def onnx_matches_pytorch(bundle, module, frames) -> float:
    batch = np.zeros((len(frames), *bundle.input.shape[1:]), np.float32)
    for frame, item in zip(frames, batch):
        Preprocessor(bundle.input)(frame, item)
    session = open_session(bundle.file("model"))
    ours = np.concatenate([session.run(None, {bundle.input.name: item[None]})[0] for item in batch])
    with torch.no_grad():
        theirs = module(torch.from_numpy(batch)).numpy()
    return float(np.abs(ours - theirs).max())


def test_one_class_unet_is_a_sigmoid_mask_whose_onnx_matches_pytorch(tmp_path, frames):
    bundle = compile_unet(tmp_path)
    assert bundle.decoder == "sigmoid" and bundle.labels == ["foreground"] and bundle.input.shape == (1, 3, 96, 128)
    assert [o.shape for o in open_session(bundle.file("model")).get_outputs()] == [[1, 1, 96, 128]]
    parts = network_parts("unet_resnet18", None, None, (128, 96))
    assert onnx_matches_pytorch(bundle, parts.module.eval(), frames) <= 1e-4


def test_a_state_dict_sets_the_classes_and_replays_footage(tmp_path, frames, assets):
    torch.manual_seed(1)
    net = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3).eval()
    checkpoint = tmp_path / "unet3.pt"
    torch.save(net.state_dict(), checkpoint)
    bundle = compile_unet(tmp_path, "--checkpoint", str(checkpoint))
    assert bundle.decoder == "softmax" and bundle.labels == ["class_0", "class_1", "class_2"]
    assert onnx_matches_pytorch(bundle, net, frames) <= 1e-4
    replay = tmp_path / "replay"
    assert main(["replay", str(assets / "videos/face-demographics-walking.gif"), "--bundle", str(bundle.root),
                 "--out", str(replay)]) == 0
    events = [json.loads(line) for line in (replay / "events.jsonl").read_text().splitlines()]
    assert len(events) == 35 and all("class_fractions" in str(e) for e in events)


def test_a_save_pretrained_folder_loads_with_its_own_config(tmp_path, frames):
    torch.manual_seed(2)
    net = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=1).eval()
    net.save_pretrained(str(tmp_path / "saved"))
    bundle = compile_unet(tmp_path, "--checkpoint", str(tmp_path / "saved"))
    assert bundle.decoder == "sigmoid"
    assert onnx_matches_pytorch(bundle, lambda x: torch.sigmoid(net(x)), frames) <= 1e-4


def test_a_state_dict_of_something_else_is_one_bad_input_line(tmp_path, capsys):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    assert main(["compile", "--model", "unet_resnet18", "--task", "segmentation", "--input-size", SIZE,
                 "--checkpoint", str(tmp_path / "other.pt"), "--out", str(tmp_path / "x")]) == 3
    err = capsys.readouterr().err.strip()
    assert "not a U-Net state_dict" in err and len(err.splitlines()) == 1


def test_pruned_unet_keeps_its_output_and_runs(tmp_path):
    result = compress(lambda: unet_network("unet_resnet18", input_size=(128, 96)), tmp_path / "pruned",
                      name="unet_p50", prune_config=PruneConfig(0.5))
    original, pruned = result.rows
    assert pruned.macs <= 0.5 * original.macs
    assert [o.shape for o in open_session(result.onnx).get_outputs()] == [[1, 1, 96, 128]]
    assert result.bundle.decoder == "sigmoid"

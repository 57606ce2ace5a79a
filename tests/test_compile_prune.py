"""Structured pruning: the automatic rule keeps every family's output width, 50 % of channels cut the MACs
accordingly, and pruned models still export to ONNX and run (through edge's runtime where it has the
decoder); YOLOX-nano converts from ONNX to PyTorch faithfully and keeps its output shape when pruned."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from compile.compress import compress  # noqa: E402
from compile.families import bundle_network, classifier_network, segmentation_network, ssd_network  # noqa: E402
from compile.onnx_to_torch import convert_onnx, max_abs_difference  # noqa: E402
from compile.prune import PruneConfig, dependency_graph, output_layers, prune, replay  # noqa: E402
from edge.backends.onnxruntime import open_session  # noqa: E402
from edge.runner import Runner  # noqa: E402
from tests.helpers.yolox import found_again  # noqa: E402

SSD = "ssdlite320_mobilenet_v3_large"


def kept_names(module, example) -> set[str]:
    names = {m: n for n, m in module.named_modules()}
    return {names[m] for m in output_layers(dependency_graph(module, example))}


@pytest.fixture(scope="module")
def frame(assets):
    return cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))


# --- (d) the automatic rule finds the layers that set each family's output width --------------------------------

@pytest.mark.parametrize("name, expected", [
    ("resnet18", {"fc"}),
    ("mobilenet_v3_small", {"classifier.3"}),
    ("googlenet", {"fc"}),
    ("densenet121", {"classifier"}),
])
def test_a_classifier_keeps_its_last_linear_layer(name, expected):
    network = classifier_network(name, input_size=(64, 64))
    assert kept_names(network.module, network.example()) == expected


@pytest.mark.parametrize("name, expected", [
    ("lraspp_mobilenet_v3_large", {"model.classifier.low_classifier", "model.classifier.high_classifier"}),
    ("deeplabv3_mobilenet_v3_large", {"model.classifier.4"}),
    ("fcn_resnet50", {"model.classifier.4"}),
])
def test_a_segmentation_model_keeps_its_classifier_convs(name, expected):
    network = segmentation_network(name, input_size=(64, 64))
    assert kept_names(network.module, network.example()) == expected


def test_ssd_keeps_every_class_and_box_head_conv():
    network = ssd_network(SSD)
    expected = {f"head.{head}_head.module_list.{level}.1" for head in ("classification", "regression")
                for level in range(6)}
    assert kept_names(network.module, torch.zeros(1, 3, 160, 160)) == expected


# --- (a) 50 % of channels: MACs drop, the export runs, the outputs keep their shapes -----------------------------

def output_shapes(onnx) -> list[list[int]]:
    return [list(o.shape) for o in open_session(onnx).get_outputs()]


def test_pruned_ssdlite_exports_and_runs_in_the_runtime(tmp_path, frame):
    result = compress(lambda: ssd_network(SSD), tmp_path / "ssd", name="ssd_p50", prune_config=PruneConfig(0.5))
    original, pruned = result.rows
    assert pruned.macs <= 0.6 * original.macs and pruned.params <= 0.6 * original.params
    assert output_shapes(result.onnx) == [[1, 3234, 4], [1, 3234, 91]]
    bundle = result.bundle
    assert bundle.decoder == "ssd" and bundle.extra["compile"]["pruning"]["ratio"] == 0.5
    assert bundle.extra["compile"]["report"]["rows"][1]["macs"] == pruned.macs
    model = Runner(bundle, "onnxruntime")
    try:
        detections = model(frame)
    finally:
        model.close()
    assert detections.boxes.shape == (len(detections), 4)


def test_pruned_segmentation_model_exports_with_its_output_shape(tmp_path):
    size = (160, 128)
    result = compress(lambda: segmentation_network("lraspp_mobilenet_v3_large", input_size=size), tmp_path / "seg",
                      name="lraspp_p50", prune_config=PruneConfig(0.5))
    original, pruned = result.rows
    assert pruned.macs <= 0.6 * original.macs
    assert output_shapes(result.onnx) == [[1, 21, 128, 160]]
    session = open_session(result.onnx)
    logits = session.run(None, {"images": np.zeros((1, 3, 128, 160), np.float32)})[0]
    assert np.isfinite(logits).all()
    if result.bundle is None:  # the runtime's segmentation decoder comes with another change
        assert (tmp_path / "seg" / "report.json").is_file()
    else:
        Runner(result.bundle, "onnxruntime").close()


def test_pruning_history_replays_onto_a_fresh_model():
    network, example = classifier_network("resnet18", input_size=(64, 64)), torch.randn(2, 3, 64, 64)
    result = prune(network.module, network.example(), PruneConfig(0.5, global_pruning=True))
    fresh = classifier_network("resnet18", input_size=(64, 64)).module
    replay(fresh, network.example(), result.history)
    fresh.load_state_dict(network.module.state_dict())  # same shapes, so the pruned weights load
    with torch.no_grad():
        assert torch.equal(fresh(example), network.module(example))
    assert result.kept_layers == ["fc"] and network.module.fc.out_features == 1000


# --- (e) YOLOX-nano: ONNX → PyTorch parity, pruning keeps [1, 3549, 85], the pruned bundle runs ---------------

@pytest.fixture(scope="module")
def yolox_module(assets):
    return convert_onnx(assets / "models/detection/yolox_nano_416x416.onnx")


def test_onnx2torch_matches_onnx_runtime_on_yolox(assets, yolox_module):
    example = (np.random.default_rng(0).random((1, 3, 416, 416)) * 255).astype(np.float32)
    assert max_abs_difference(yolox_module, assets / "models/detection/yolox_nano_416x416.onnx", example) <= 1e-3


def test_a_dynamo_export_with_allowzero_reshapes_and_batch_one_resizes_converts(assets, tmp_path):
    """ESPNetv2's export (PyTorch's dynamo exporter) sets ``allowzero=1`` on its channel-shuffle reshapes, which
    onnx2torch refuses (this stopped `edge quantize --qat` on it); with constant shapes free of zeros the
    attribute changes nothing and is dropped."""
    from calibration.ptq import convert_opset

    model = convert_opset(assets / "models/segmentation/espnetv2_s1.0_voc21_384x384.onnx", tmp_path / "m17.onnx")
    example = np.random.default_rng(0).random((2, 3, 384, 384), np.float32)
    module = convert_onnx(model)
    assert max_abs_difference(module, model, example[:1]) <= 1e-3
    # Its Resize sizes say batch 1 ([1, C, H, W]); QAT trains it on batches.
    with torch.no_grad():
        batch, single = module(torch.from_numpy(example)), module(torch.from_numpy(example[1:]))
    assert batch.shape == (2, 21, 384, 384)
    assert torch.allclose(batch[1:], single, atol=1e-4)


def test_converted_yolox_takes_batches(yolox_module):
    with torch.no_grad():
        assert yolox_module(torch.zeros(2, 3, 224, 224)).shape == (2, 1029, 85)


def test_pruned_yolox_keeps_its_output_and_runs_as_a_bundle(yolox_bundle, tmp_path, frame):
    result = compress(lambda: bundle_network(yolox_bundle), tmp_path / "yolox", name="yolox_p50",
                      prune_config=PruneConfig(0.5))
    original, pruned = result.rows
    assert pruned.macs <= 0.6 * original.macs
    assert output_shapes(result.onnx) == [[1, 3549, 85]]
    bundle = result.bundle
    assert bundle.input == yolox_bundle.input and bundle.decoder == "yolox"
    assert bundle.labels == yolox_bundle.labels
    model = Runner(bundle, "onnxruntime")
    try:
        model(frame)
    finally:
        model.close()


def test_round_to_leaves_every_pruned_yolox_layer_a_multiple_of_8(yolox_bundle, tmp_path):
    """Unrounded, 30 % of YOLOX-nano's 16/32/64/128/256 channels leaves 11/22/44/89/179, which TensorRT's kernels
    pad back up; rounded, only the head's fixed widths (box 4, objectness 1, classes 80) are not multiples."""
    result = compress(lambda: bundle_network(yolox_bundle), tmp_path / "yolox", name="yolox_r8",
                      prune_config=PruneConfig(0.3, round_to=8))
    model = onnx.load(result.onnx)
    weights = {w.name: w.dims for w in model.graph.initializer}
    widths = {weights[node.input[1]][0] for node in model.graph.node if node.op_type == "Conv"}
    assert {w for w in widths if w % 8} == {1, 4} and 80 in widths
    assert output_shapes(result.onnx) == [[1, 3549, 85]]
    assert result.rows[1].macs < 0.6 * result.rows[0].macs
    assert result.bundle.extra["compile"]["pruning"]["round_to"] == 8  # the bundle says how it was pruned


# --- MTCNN R-Net and O-Net: real weights, the flatten before their dense layers prunes consistently ------------

@pytest.mark.parametrize("role, conv", [("rnet", "conv3"), ("onet", "conv4")])
def test_pruning_the_conv_before_the_dense_layer_equals_silencing_its_channels(assets, role, conv):
    """Torch-Pruning maps a pruned channel to the dense columns of a channel-major flatten; the published
    weights are in Caffe (width, height, channel) order, and must have been reordered on loading."""
    import copy

    import torch_pruning as tp

    from compile.mtcnn import NETWORKS, load_network

    network = load_network(role, assets / f"models/detection/mtcnn_{role}.pt")
    side, channels = NETWORKS[role][1], [0, 5, 7]
    crops = torch.randn(4, 3, side, side, generator=torch.Generator().manual_seed(0))
    silenced = copy.deepcopy(network)
    with torch.no_grad():
        getattr(silenced, conv).weight[channels] = 0
        getattr(silenced, conv).bias[channels] = 0  # PReLU(0) = 0: those features are zero
        expected = silenced(crops)
    graph = dependency_graph(network, torch.zeros(1, 3, side, side))
    graph.get_pruning_group(getattr(network, conv), tp.prune_conv_out_channels, idxs=channels).prune()
    with torch.no_grad():
        for ours, theirs in zip(network(crops), expected):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_pruned_onet_runs_in_the_runtime_as_a_face_classifier(assets, tmp_path, frame):
    from compile.families import mtcnn_stage_network

    result = compress(lambda: mtcnn_stage_network("mtcnn_onet", assets / "models/detection/mtcnn_onet.pt"),
                      tmp_path / "onet", name="onet_p50", prune_config=PruneConfig(0.5))
    original, pruned = result.rows
    assert pruned.macs <= 0.4 * original.macs
    assert output_shapes(result.onnx) == [["n", 2], ["n", 4], ["n", 10]]  # crops come in batches
    assert result.bundle.decoder == "softmax-topk" and result.bundle.labels == ["not face", "face"]
    model = Runner(result.bundle, "onnxruntime")
    try:
        top = model(frame)
    finally:
        model.close()
    assert sorted(top.class_ids.tolist()) == [0, 1] and abs(float(top.scores.sum()) - 1.0) < 1e-4


# --- YOLOX-nano's channels: indices map right through onnx2torch's modules; ranking by contribution ----------

YOLOX_EXAMPLE = torch.zeros(1, 3, 416, 416)


def pruned_yolox(assets, batch, importance: str, ratio: float):
    """(teacher, pruned student, pruning history) of YOLOX-nano converted from its ONNX file."""
    path = assets / "models/detection/yolox_nano_416x416.onnx"
    teacher, student = convert_onnx(path), convert_onnx(path)
    result = prune(student, YOLOX_EXAMPLE, PruneConfig(ratio, importance=importance), images=batch)
    return teacher, student, result.history


def test_pruned_yolox_equals_the_teacher_with_the_same_channels_silenced(assets, yolox_highway_batch):
    """Torch-Pruning follows YOLOX's Focus slices, CSP concatenations, resizes and head reshapes through
    onnx2torch's modules: the pruned network computes exactly what the unpruned one does with the dropped
    channels' filters and folded biases zeroed (SiLU(0) = 0), so nothing is wired to the wrong channel.
    Contribution importance ranks the SPP convolution, which one concatenation reads four times, in its own
    channels (they once came out in the concatenation's 512 and thinned it to 23 of 128 channels)."""
    from compile.reconstruct import kept_channels

    ratio = 0.15
    teacher, student, history = pruned_yolox(assets, yolox_highway_batch, "contribution", ratio)
    kept = kept_channels(convert_onnx(assets / "models/detection/yolox_nano_416x416.onnx"), YOLOX_EXAMPLE, history)
    with torch.no_grad():
        for name, conv in teacher.named_modules():
            if isinstance(conv, torch.nn.Conv2d):
                dropped = torch.ones(conv.out_channels, dtype=torch.bool)
                dropped[kept[name]] = False
                conv.weight[dropped] = 0
                conv.bias[dropped] = 0
        assert sum(int(len(kept[n]) < c.out_channels) for n, c in teacher.named_modules() if n in kept) > 50
        torch.testing.assert_close(student(yolox_highway_batch), teacher(yolox_highway_batch), atol=1e-4, rtol=1e-4)
    spp = student.get_submodule("Conv_168")  # 128 channels, read by cat[x, pool5(x), pool9(x), pool13(x)]
    assert 128 - round(128 * ratio) - 1 <= spp.out_channels <= 128 - round(128 * ratio) + 1


def test_contribution_keeps_yolox_detecting_where_weight_magnitude_loses_it(assets, yolox_highway_batch):
    """BatchNorm folded into YOLOX-nano's convolutions leaves weight norms that say little about what a
    channel feeds the next layer (a small filter with a large folded bias is a large steady input); ranking
    by that contribution on real frames keeps the cars that pruning 2 % by weight magnitude loses."""
    found = {}
    for importance in ("magnitude", "contribution"):
        teacher, student, _ = pruned_yolox(assets, yolox_highway_batch, importance, 0.02)
        found[importance] = found_again(student, teacher, yolox_highway_batch)
    assert found["contribution"] >= found["magnitude"] + 0.3, found

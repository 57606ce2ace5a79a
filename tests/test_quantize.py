"""INT8: calibration sets (cached, held-out frames disjoint), the Q/DQ lint, the accuracy gate, ``edge quantize``."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

pytest.importorskip("onnxruntime.quantization")

from calibration import dataset  # noqa: E402
from calibration.dataset import calibration_set  # noqa: E402
from calibration.gate import Gate  # noqa: E402
from calibration.lint import QdqLintError, lint_qdq  # noqa: E402
from calibration.ptq import TENSORRT, TensorReader, prepare, quantize  # noqa: E402
from edge.backends.onnxruntime import open_session  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.cli import main  # noqa: E402

HIGHWAY = "videos/bgslibrary_highway_traffic_320x240.avi"
PERSON = "videos/one-by-one-person-detection.mp4"


@pytest.fixture(scope="module")
def yolox_set(yolox_bundle, assets, tmp_path_factory):
    return calibration_set(yolox_bundle.input, [str(assets / HIGHWAY)], 16, 32, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def yolox_gate(yolox_bundle, yolox_set):
    return Gate(yolox_bundle, yolox_set.holdout, max_drop=0.01)


@pytest.fixture(scope="module")
def yolox_s8s8(yolox_bundle, yolox_set, tmp_path_factory):
    """The real TensorRT-style quantization of YOLOX-nano (opset 11, converted first)."""
    folder = tmp_path_factory.mktemp("s8s8")
    prepared = prepare(yolox_bundle.file("model"), folder / "prepared.onnx")
    reader = TensorReader(yolox_bundle.input.name, list(yolox_set.batches()))
    return quantize(prepared, folder / "s8s8.onnx", reader, "minmax", TENSORRT, folder / "ranges.json")


def test_the_calibration_set_is_cached_and_its_holdout_is_disjoint(espnet_bundle, assets, tmp_path, monkeypatch):
    calls = []
    sample = dataset.sample_frames
    monkeypatch.setattr(dataset, "sample_frames", lambda *a, **k: calls.append(a) or sample(*a, **k))
    first = calibration_set(espnet_bundle.input, [str(assets / PERSON)], 12, 6, tmp_path)
    second = calibration_set(espnet_bundle.input, [str(assets / PERSON)], 12, 6, tmp_path)
    assert len(calls) == 1  # the second set came from the cache: the video was not decoded again
    assert np.array_equal(first.tensors, second.tensors) and second.calibration_frames == first.calibration_frames
    assert all(np.array_equal(a, b) for a, b in zip(first.holdout, second.holdout))
    assert first.tensors.shape == (12, 3, 384, 384) and len(first.holdout) == 6
    assert not set(first.calibration_frames) & set(first.holdout_frames)
    calibration_set(espnet_bundle.input, [str(assets / PERSON)], 10, 6, tmp_path)  # other counts: a new set
    assert len(calls) == 2


def test_lint_accepts_the_real_yolox_quantization(yolox_s8s8):
    model = onnx.load(str(yolox_s8s8))
    assert lint_qdq(model) > 100
    assert 13 <= model.opset_import[0].version <= 17


def _initializer(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def _replace(model, name, array):
    _initializer(model, name).CopyFrom(numpy_helper.from_array(array, name))


@pytest.mark.parametrize("plant, message", [
    ("zero_point", "zero point is not 0"),
    ("weight_axis", "per-channel axis 1, but the output channels are on axis 0"),
    ("weight_scales", "scales for"),
    ("per_channel_activation", "scales on an activation"),
    ("negative_scale", "scale must be a positive build-time constant"),
    ("uint8", "uint8, not int8"),
    ("opset", "opset 11"),
])
def test_lint_names_the_node_that_breaks_a_rule(yolox_s8s8, plant, message):
    model = onnx.load(str(yolox_s8s8))
    constants = {t.name for t in model.graph.initializer}
    quantize_node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in constants)
    weight_dq = _weight_pairs(model)[0][1]
    weight_scale = numpy_helper.to_array(_initializer(model, weight_dq.input[1]))
    if plant == "zero_point":
        _replace(model, quantize_node.input[2], np.array(3, np.int8))
    elif plant == "weight_axis":
        weight_dq.attribute.append(helper.make_attribute("axis", 1))
        del weight_dq.attribute[0]  # ORT wrote axis 0 first
    elif plant == "weight_scales":
        _replace(model, weight_dq.input[1], weight_scale[:-1].copy())
        _replace(model, weight_dq.input[2], np.zeros(len(weight_scale) - 1, np.int8))
    elif plant == "per_channel_activation":
        _replace(model, quantize_node.input[1], np.full(3, 0.5, np.float32))
        _replace(model, quantize_node.input[2], np.zeros(3, np.int8))
    elif plant == "negative_scale":
        _replace(model, weight_dq.input[1], -weight_scale)
    elif plant == "uint8":
        _replace(model, quantize_node.input[2], np.array(0, np.uint8))
    else:
        model.opset_import[0].version = 11
    with pytest.raises(QdqLintError, match=message) as error:
        lint_qdq(model)
    if plant != "opset":
        assert "'" in str(error.value)  # the node is named


def test_lint_takes_per_tensor_weights_as_tensorrt_does(yolox_s8s8):
    """A scalar weight scale without ``axis`` is per-tensor (not ONNX's default axis 1): legal, if less accurate."""
    model = onnx.load(str(yolox_s8s8))
    for pair in _weight_pairs(model):
        scale = numpy_helper.to_array(_initializer(model, pair[1].input[1]))
        _replace(model, pair[1].input[1], np.array(scale.max(), np.float32))
        _replace(model, pair[1].input[2], np.array(0, np.int8))
        for node in pair:
            del node.attribute[:]
    assert lint_qdq(model) > 100


def _weight_pairs(model):
    """(Q, DQ) of every conv weight (float weights behind their own pair, as the s8s8 variant writes them)."""
    producers = {out: n for n in model.graph.node for out in n.output}
    pairs = []
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        dq = producers.get(conv.input[1])
        if dq is not None and dq.op_type == "DequantizeLinear":
            pairs.append((producers[dq.input[0]], dq))
    return pairs


def test_lint_accepts_a_modelopt_export_with_a_one_channel_conv(tmp_path):
    """ModelOpt's torch quantizer exports scales and zero points as Constant nodes (zero points through a Cast),
    and a one-output conv (YOLOX's objectness head) gets a scalar weight scale with no axis; the export is valid
    Q/DQ that TensorRT builds, so the lint passes it."""
    torch = pytest.importorskip("torch")
    mtq = pytest.importorskip("modelopt.torch.quantization")
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 1, 1)).eval()
    frames = [torch.randn(2, 3, 16, 16) for _ in range(4)]
    mtq.quantize(model, mtq.INT8_DEFAULT_CFG, lambda m: [m(x) for x in frames])
    torch.onnx.export(model, frames[0][:1], str(tmp_path / "qat.onnx"), opset_version=17, dynamo=False)
    exported = onnx.load(str(tmp_path / "qat.onnx"))
    kinds = {n.op_type for n in exported.graph.node}
    assert {"Constant", "QuantizeLinear", "DequantizeLinear"} <= kinds
    one_channel = [n for n in exported.graph.node if n.op_type == "DequantizeLinear" and "2/weight" in n.name]
    assert one_channel and not any(a.name == "axis" for a in one_channel[0].attribute)
    assert lint_qdq(exported) == 8  # input and weight of two convs, Q and DQ each


def test_the_noise_floor_is_fp32_against_itself_below_one(yolox_gate):
    """fp32 against fp32 on the same frames with camera noise and a JPEG re-encode does not score 1: that is the
    floor the allowance is taken from, with its bootstrap interval."""
    floor = yolox_gate.floor
    print(f"YOLOX-nano noise floor on {len(yolox_gate.frames)} highway frames: {floor.describe()}", file=sys.stderr)
    assert 0.9 < floor.score < 1.0 and floor.low <= floor.score <= floor.high < 1.0
    assert yolox_gate.required == pytest.approx(floor.score - 0.01)
    assert floor.metric in ("class-aware mAP@0.5", "class-agnostic mAP@0.5")
    described = yolox_gate.describe()
    assert described["floor"][0] == floor.score and described["frames"] == len(yolox_gate.frames) >= 20


def test_the_gate_rejects_a_planted_wrong_scale(yolox_bundle, yolox_set, yolox_gate, tmp_path):
    """The input image fake-quantized: with its calibrated scale (0..255 pixels on int8) the output agrees with
    fp32 within the floor; with a scale 100× too large (a broken calibration) the gate sees the loss and rejects
    it, floor or not."""
    prepared = prepare(yolox_bundle.file("model"), tmp_path / "prepared.onnx")
    tensor = yolox_bundle.input.name
    peak = float(np.abs(yolox_set.tensors).max())
    scores = {}
    for name, scale in (("calibrated", peak / 127), ("broken", peak / 127 * 100)):
        planted = _fake_quantize(onnx.load(str(prepared)), tensor, scale)
        lint_qdq(planted)
        onnx.save(planted, str(tmp_path / f"{name}.onnx"))
        scores[name] = yolox_gate.score(tmp_path / f"{name}.onnx")
    assert yolox_gate.passes(scores["calibrated"])
    assert not yolox_gate.passes(scores["broken"]) and scores["broken"].high < yolox_gate.floor.low


def test_the_gate_computes_qdq_pairs_as_tensorrt_does(tmp_path):
    """TensorRT computes what the Q/DQ pairs say; ONNX Runtime's fused int8 kernels need not (1.32 gets whole
    columns of a MatMul with per-column weight scales on a 4-D input wrong: ESPNetv2's adaptive pooling). The
    gate's sessions run the pairs as written, and match the arithmetic done by hand."""
    bins, size = 24, 36
    pooling = np.zeros((bins, size), np.float32)  # adaptive average pooling 36 → 24, as a matrix
    for row in range(bins):
        low, high = row * size // bins, -(-(row + 1) * size // bins)
        pooling[row, low:high] = 1 / (high - low)
    weight_scale = pooling.max(axis=1) / 127
    weight = np.round(pooling.T / weight_scale).astype(np.int8)  # [36, 24], one scale per output column
    x_scale = np.float32(0.5 / 127)
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
         helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
         helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["w_dq"], axis=1),
         helper.make_node("MatMul", ["x_dq", "w_dq"], ["y"])],
        "pooling", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 10, bins, size])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10, bins, bins])],
        [numpy_helper.from_array(x_scale, "x_scale"), numpy_helper.from_array(np.int8(0), "x_zero"),
         numpy_helper.from_array(weight, "w"), numpy_helper.from_array(weight_scale, "w_scale"),
         numpy_helper.from_array(np.zeros(bins, np.int8), "w_zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "pooling.onnx"))
    x = np.random.default_rng(0).random((1, 10, bins, size), np.float32) * 0.5
    by_hand = (np.clip(np.round(x / x_scale), -128, 127) * x_scale) @ (weight.astype(np.float32) * weight_scale)
    found = open_session(tmp_path / "pooling.onnx", fuse_int8=False).run(None, {"x": x})[0]
    assert np.abs(found - by_hand).max() <= 1e-6


def _fake_quantize(model, tensor, scale):
    """``tensor`` → QuantizeLinear → DequantizeLinear (int8, zero point 0) before its consumers."""
    model.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), "planted_scale"),
                                    numpy_helper.from_array(np.array(0, np.int8), "planted_zero")])
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = "planted_dq"
    model.graph.node.extend([
        helper.make_node("QuantizeLinear", [tensor, "planted_scale", "planted_zero"], ["planted_q"], "planted_Q"),
        helper.make_node("DequantizeLinear", ["planted_q", "planted_scale", "planted_zero"], ["planted_dq"],
                         "planted_DQ")])
    sorted_nodes = _topological(model)
    del model.graph.node[:]
    model.graph.node.extend(sorted_nodes)
    return model


def _topological(model):
    ready = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    pending, ordered = list(model.graph.node), []
    while pending:
        node = next(n for n in pending if all(i in ready or not i for i in n.input))
        pending.remove(node)
        ordered.append(node)
        ready.update(node.output)
    return ordered


def _quantize_cli(bundle, source, out, *extra):
    return main(["quantize", str(bundle.root), "--calib", str(source), "--out", str(out), "--calib-frames", "16",
                 "--holdout-frames", "8", *extra])


def test_edge_quantize_that_cannot_pass_writes_nothing(yolox_bundle, assets, tmp_path, capsys, monkeypatch):
    """--max-drop 0 with nothing allowed in float: no int8 model reaches fp32's own floor; the gate fails with one
    line naming the numbers, exit 4, --out untouched."""
    monkeypatch.setenv("EDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "int8"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert _quantize_cli(yolox_bundle, assets / HIGHWAY, out, "--method", "minmax", "--max-drop", "0",
                         "--max-float", "0") == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("edge: error: int8 accuracy gate failed for 'yolox_nano'") and "no bundle written" in err
    assert "minmax+equalized" in err and "fp32's floor" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("args, code, message", [
    (["--calib", "missing.mp4"], 3, "missing.mp4"),
    (["--calib", "{video}", "--method", "best"], 2, "--method: unknown method 'best'"),
    (["--calib", "{video}", "--max-drop", "1.5"], 2, "--max-drop: 1.5"),
    (["--calib", "{video}", "--max-float", "2"], 2, "--max-float: 2"),
    ([], 2, "--calib: give calibration footage"),
])
def test_bad_quantize_input_is_one_line(yolox_bundle, assets, tmp_path, capsys, args, code, message):
    args = [a.replace("{video}", str(assets / HIGHWAY)) for a in args]
    assert main(["quantize", str(yolox_bundle.root), "--out", str(tmp_path / "q"), *args]) == code
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("edge: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "q").exists()


def test_compile_int8_quantizes_the_compiled_bundle_in_place(assets, tmp_path, monkeypatch, capsys):
    pytest.importorskip("torchvision")
    monkeypatch.setenv("EDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mobilenet"
    assert main(["compile", "--model", "mobilenet_v3_small", "--task", "classification", "--input-size", "64x64",
                 "--out", str(out), "--int8", "--calib", str(assets / HIGHWAY), "--calib-frames", "8",
                 "--holdout-frames", "4", "--method", "minmax", "--max-drop", "1"]) == 0, capsys.readouterr().err
    bundle = load_bundle(out)
    assert bundle.precision == "int8" and bundle.extra["quantization"]["metric"] == "top-1"
    assert sorted(p.name for p in out.glob("*.onnx")) == sorted({bundle.files["model"], bundle.files["model_cpu"]})
    lint_qdq(onnx.load(str(bundle.file("model"))))
    assert main(["compile", "--model", "mobilenet_v3_small", "--task", "classification", "--out", str(out),
                 "--calib", str(assets / HIGHWAY)]) == 2  # --calib without --int8


def test_compile_prune_int8_is_one_chain_with_a_timed_row_per_stage(assets, tmp_path, monkeypatch, capsys):
    """``--prune`` and ``--int8`` in one command: one int8 bundle whose report has a row per stage, each with its
    CPU latency (the stages' models timed in turns at the end, the int8 one too)."""
    pytest.importorskip("torchvision")
    monkeypatch.setenv("EDGE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mobilenet"
    assert main(["compile", "--model", "mobilenet_v3_small", "--task", "classification", "--input-size", "64x64",
                 "--prune", "0.25", "--out", str(out), "--int8", "--calib", str(assets / HIGHWAY),
                 "--calib-frames", "8", "--holdout-frames", "4", "--method", "minmax", "--max-drop", "1"]) == 0, \
        capsys.readouterr().err
    bundle = load_bundle(out)
    rows = bundle.extra["compile"]["report"]["rows"]
    assert bundle.precision == "int8" and [row["stage"] for row in rows] == ["original", "pruned", "int8"]
    assert rows[2]["macs"] == rows[1]["macs"] < rows[0]["macs"]
    assert all(row["latency_ms"] > 0 for row in rows), rows
    assert sorted(p.name for p in out.glob("*.onnx")) == sorted({bundle.files["model"], bundle.files["model_cpu"]})

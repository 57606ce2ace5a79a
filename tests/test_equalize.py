"""Channel equalization is exact in fp32 (folded into a producing conv, or a Mul in front of the conv) and evens
out the ranges a per-tensor int8 scale must cover; layers go back to float by a graph edit."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("onnxruntime.quantization")

from calibration.bias_correction import correct_biases  # noqa: E402
from calibration.dataset import calibration_set  # noqa: E402
from calibration.equalize import MAX_SCALE, channel_ranges, equalize  # noqa: E402
from calibration.ptq import TENSORRT, TensorReader, prepare, quantize  # noqa: E402
from calibration.qdq_edit import keep_in_float, only_quantized, quantized_layers, weighted_layers  # noqa: E402
from edge.backends.onnxruntime import open_session  # noqa: E402

HIGHWAY = "videos/bgslibrary_highway_traffic_320x240.avi"


def _conv(name, source, out, weight, group=1):
    return helper.make_node("Conv", [source, f"{name}_w", f"{name}_b"], [out], name, group=group,
                            pads=[1, 1, 1, 1] if weight.shape[-1] == 3 else [0, 0, 0, 0])


def _model(rng):
    """x → conv A → ReLU → depthwise B (folded into A) → SiLU → depthwise C (a Mul: SiLU is not homogeneous)
    → 1×1 conv D (several channels per group: balanced, folded into C); A's output channels made 1000× apart."""
    spread = np.array([1000.0, 1.0, 0.3, 30.0, 3.0, 0.001], np.float32)
    weights = {"A": rng.normal(0, 1, (6, 3, 3, 3)).astype(np.float32) * spread[:, None, None, None],
               "B": rng.normal(0, 1, (6, 1, 3, 3)).astype(np.float32),
               "C": rng.normal(0, 1, (6, 1, 3, 3)).astype(np.float32),
               "D": rng.normal(0, 1, (4, 6, 1, 1)).astype(np.float32)}
    initializers = []
    for name, w in weights.items():
        initializers += [numpy_helper.from_array(w, f"{name}_w"),
                         numpy_helper.from_array(rng.normal(0, 1, w.shape[0]).astype(np.float32), f"{name}_b")]
    nodes = [_conv("A", "x", "a", weights["A"]), helper.make_node("Relu", ["a"], ["a_relu"], "relu"),
             _conv("B", "a_relu", "b", weights["B"], group=6), helper.make_node("Sigmoid", ["b"], ["b_sig"], "sig"),
             helper.make_node("Mul", ["b", "b_sig"], ["b_silu"], "silu"),
             _conv("C", "b_silu", "c", weights["C"], group=6), _conv("D", "c", "y", weights["D"])]
    graph = helper.make_graph(nodes, "equalize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_equalization_is_exact_and_evens_the_ranges(tmp_path):
    rng = np.random.default_rng(0)
    onnx.save(_model(rng), str(tmp_path / "model.onnx"))
    batches = [rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32) for _ in range(6)]
    out, rescaled = equalize(tmp_path / "model.onnx", tmp_path / "equalized.onnx", batches[:4], "x")
    equalized = onnx.load(str(out))
    assert rescaled == 3  # B (folded into A), C (a Mul) and D (balanced, folded into C)
    muls = [n for n in equalized.graph.node if n.op_type == "Mul" and n.name.endswith("_equalize")]
    assert [n.name for n in muls] == ["C_equalize"]
    folded = {t.name.split("_")[0] for t in equalized.graph.initializer if "_folded_" in t.name}
    assert folded == {"A", "C"}
    before, after = open_session(tmp_path / "model.onnx"), open_session(out)
    for batch in batches[4:]:
        expected, got = before.run(None, {"x": batch})[0], after.run(None, {"x": batch})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    spread = {}
    for name, model in (("before", _model(np.random.default_rng(0))), ("after", equalized)):
        tensor = next(n.input[0] for n in model.graph.node if n.name == "B")
        ranges = channel_ranges(model, [tensor], batches[:4], "x", tmp_path / name)[tensor]
        spread[name] = ranges.max() / ranges.min()
    # every channel scaled to the widest one's range, but for the MAX_SCALE clip on the narrowest
    assert spread["before"] > 1000 and spread["after"] <= max(1.01, spread["before"] / MAX_SCALE * 1.01)


@pytest.fixture(scope="module")
def yolox_equalized(yolox_bundle, assets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("equalized")
    found = calibration_set(yolox_bundle.input, [str(assets / HIGHWAY)], 12, 4, folder)
    batches = list(found.batches())
    prepared = prepare(yolox_bundle.file("model"), folder / "prepared.onnx")
    equalized, rescaled = equalize(prepared, folder / "equalized.onnx", batches[:8], yolox_bundle.input.name)
    return prepared, equalized, rescaled, batches


def test_yolox_equalized_is_the_same_model_in_fp32(yolox_bundle, yolox_equalized):
    """The stem's SiLU output (tensor 687, 700× between channels) gets a Mul before depthwise Conv_44; outputs agree
    to float rounding on frames the ranges were not measured on."""
    prepared, equalized, rescaled, batches = yolox_equalized
    model = onnx.load(str(equalized))
    assert rescaled > 50 and any(n.name == "Conv_44_equalize" for n in model.graph.node)
    name = yolox_bundle.input.name
    before, after = open_session(prepared), open_session(equalized)
    for batch in batches[8:]:
        expected, got = before.run(None, {name: batch})[0], after.run(None, {name: batch})[0]
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_layers_go_back_to_float_by_a_graph_edit(yolox_bundle, yolox_equalized, tmp_path):
    prepared, equalized, _, batches = yolox_equalized
    quantized = quantize(equalized, tmp_path / "s8s8.onnx", TensorReader(yolox_bundle.input.name, batches[:8]),
                         "minmax", TENSORRT, tmp_path / "ranges.json")
    model = onnx.load(str(quantized))
    layers = quantized_layers(model)
    assert len(layers) == weighted_layers(model) == 113
    float_again = keep_in_float(model, layers)
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in float_again.graph.node)
    onnx.save(float_again, str(tmp_path / "float.onnx"))
    name = yolox_bundle.input.name
    reference, edited = open_session(equalized), open_session(tmp_path / "float.onnx")
    np.testing.assert_array_equal(edited.run(None, {name: batches[9]})[0], reference.run(None, {name: batches[9]})[0])
    alone = only_quantized(model, "Conv_44")
    assert quantized_layers(alone) == ["Conv_44"]
    assert sum(n.op_type == "QuantizeLinear" for n in alone.graph.node) == 2  # its input and its weight


def test_bias_correction_takes_out_each_layer_s_mean_error(tmp_path):
    """Weights that all round the same way (0.004 on a per-channel grid of 1/127) shift every output channel by the
    same amount on every pixel; the corrected bias takes the shift out, on frames it was not measured on."""
    rng = np.random.default_rng(1)
    weight = np.full((4, 4, 1, 1), 0.004, np.float32)
    weight[:, 0] = 1.0
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], "conv")], "shifted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.zeros(4, np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "fp32.onnx"))
    batches = [rng.uniform(0, 1, (1, 4, 8, 8)).astype(np.float32) for _ in range(12)]
    quantized = quantize(tmp_path / "fp32.onnx", tmp_path / "s8s8.onnx", TensorReader("x", batches[:8]), "minmax",
                         TENSORRT, tmp_path / "ranges.json")
    corrected = correct_biases(quantized, tmp_path / "corrected.onnx", batches[:8], "x")
    reference = open_session(tmp_path / "fp32.onnx")
    shifts = {}
    for label, path in (("quantized", quantized), ("corrected", corrected)):
        session = open_session(path)
        shifts[label] = np.mean([session.run(None, {"x": b})[0] - reference.run(None, {"x": b})[0]
                                 for b in batches[8:]], axis=(0, 1, 3, 4))
    assert (shifts["quantized"] > 0.004).all()  # 3 × ~0.0039 × mean input 0.5, give or take the input's rounding
    assert (np.abs(shifts["corrected"]) < 0.1 * shifts["quantized"]).all()

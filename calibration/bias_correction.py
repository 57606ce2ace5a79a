"""Empirical bias correction: each quantized convolution's mean output error taken back out of its bias.

Rounding weights and activations is not zero-mean per channel once it has gone through a layer: a channel whose
weights all round up outputs a little more on every pixel, and the next layers see that shift as signal (Nagel et
al., *Data-Free Quantization*, 2019, §4.2). The shift is measured layer by layer on the calibration frames: beside
every quantized convolution runs a float twin reading the same activation before its Q/DQ pair and the float
weight, so the difference of their per-channel means is that layer's own error, not the error of the layers before
it (correcting all layers at once with errors measured end to end counts each upstream error again in every layer
after it, and diverges). One pass measures every layer; the shift is then subtracted from each bias.

The quantized graph keeps weights and biases in float behind their Q/DQ pairs (TensorRT quantizes them itself), so
this is an edit of bias initializers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from calibration.equalize import channel_ranges_and_means
from calibration.qdq_edit import pair_source, quantized_layers


def correct_biases(quantized: Path, out: Path, batches: Sequence[np.ndarray], input_name: str) -> Path:
    """Writes ``quantized`` (float weights behind Q/DQ pairs) with corrected conv biases to ``out``."""
    model = onnx.load(str(quantized))
    names = set(quantized_layers(model))
    producers = {o: n for n in model.graph.node for o in n.output}
    pairs = []
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for conv in (n for n in model.graph.node if n.op_type == "Conv" and n.name in names):
        sources = [pair_source(name, producers) or name for name in conv.input]
        if sources[:2] == list(conv.input[:2]):
            continue  # neither input quantized through a pair
        twin = helper.make_node("Conv", sources, [f"{conv.output[0]}_float_twin"], f"{conv.name}_float_twin")
        twin.attribute.extend(conv.attribute)
        probe.graph.node.append(twin)
        pairs.append((conv, conv.output[0], twin.output[0]))
    _, means = channel_ranges_and_means(probe, [t for _, o, f in pairs for t in (o, f)], batches, input_name, out)
    for conv, found, reference in pairs:
        _correct(model, conv, (means[found] - means[reference]).astype(np.float32))
    onnx.save(model, str(out))
    return out


def _correct(model: onnx.ModelProto, conv: onnx.NodeProto, shift: np.ndarray) -> None:
    """``conv``'s bias less ``shift``, in an initializer of its own (a zero bias where it had none)."""
    initializers = {t.name: t for t in model.graph.initializer}
    has_bias = len(conv.input) > 2 and conv.input[2] in initializers
    bias = numpy_helper.to_array(initializers[conv.input[2]]) if has_bias else np.zeros_like(shift)
    name = f"{conv.name}_bias_corrected"
    model.graph.initializer.append(numpy_helper.from_array((bias - shift).astype(np.float32), name))
    while len(conv.input) < 3:
        conv.input.append("")
    conv.input[2] = name

"""Layers of a Q/DQ graph taken back to float, by editing the graph instead of quantizing it again.

Both quantizers here leave every weighted layer its own Q/DQ pairs: ONNX Runtime's with ``DedicatedQDQPair`` and
``AddQDQPairToWeight`` (float weights → Q → DQ, which TensorRT quantizes itself at build time), ModelOpt's export by
construction. Keeping a layer in float is then a rewiring: each of its inputs that comes out of a
QuantizeLinear → DequantizeLinear pair reads the pair's float input instead, and the pairs nobody reads any more
go. It costs milliseconds, where quantizing again costs the calibration pass, so the keep-in-float search can try
many sets of layers, and "this layer alone quantized" is the same edit with every other layer kept.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import onnx

from calibration.lint import PASS_THROUGH, WEIGHT_INPUTS

DEAD_OPS = ("QuantizeLinear", "DequantizeLinear", "Constant", *PASS_THROUGH)  # what a bypass may leave unread


def quantized_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the weighted layers (Conv, ConvTranspose, MatMul, Gemm) that read a dequantized input."""
    producers = {out: n for n in model.graph.node for out in n.output}
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_INPUTS
            and any(pair_source(i, producers) is not None for i in n.input)]


def weighted_layers(model: onnx.ModelProto) -> int:
    """How many weighted layers the graph has, quantized or not (the denominator of "share kept in float")."""
    return sum(n.op_type in WEIGHT_INPUTS for n in model.graph.node)


def keep_in_float(model: onnx.ModelProto, layers: Collection[str]) -> onnx.ModelProto:
    """A copy of ``model`` in which the named layers read float inputs; unread Q/DQ nodes removed."""
    wanted = set(layers)
    return _bypass(model, lambda node: node.name in wanted)


def weighted_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which only weighted layers read dequantized activations; every other reader of a Q → DQ pair's
    output (ONNX Runtime's quantizer rewires a Resize or a pooling that shares the tensor with a convolution)
    reads the float tensor again: Q/DQ at the inputs of weighted layers only, TensorRT's recommended placement."""
    return _bypass(model, lambda node: node.op_type not in WEIGHT_INPUTS and node.op_type not in DEAD_OPS)


def _bypass(model: onnx.ModelProto, chosen: Callable[[onnx.NodeProto], bool]) -> onnx.ModelProto:
    """A copy in which the ``chosen`` nodes read the float tensor behind each Q → DQ pair they read."""
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    producers = {out: n for n in edited.graph.node for out in n.output}
    for node in edited.graph.node:
        if chosen(node):
            for index, name in enumerate(node.input):
                source = pair_source(name, producers)
                if source is not None:
                    node.input[index] = source
    _drop_unread(edited)
    return edited


def only_quantized(model: onnx.ModelProto, layer: str) -> onnx.ModelProto:
    """A copy of ``model`` with ``layer`` the one quantized layer."""
    return keep_in_float(model, [name for name in quantized_layers(model) if name != layer])


def pair_source(name: str, producers: dict[str, onnx.NodeProto]) -> str | None:
    """The float tensor behind ``name`` when ``name`` is the output of a Q → DQ pair (through Identity/Cast)."""
    dq = producers.get(name)
    while dq is not None and dq.op_type in PASS_THROUGH:
        dq = producers.get(dq.input[0])
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers.get(dq.input[0])
    return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None


def _drop_unread(model: onnx.ModelProto) -> None:
    """Removes Q/DQ (and Constant/Identity/Cast) nodes whose outputs nothing reads, and orphaned initializers."""
    outputs = {o.name for o in model.graph.output}
    while True:
        read = {name for node in model.graph.node for name in node.input} | outputs
        dead = [i for i, n in enumerate(model.graph.node) if n.op_type in DEAD_OPS and not set(n.output) & read]
        if not dead:
            break
        for index in reversed(dead):
            del model.graph.node[index]
    read = {name for node in model.graph.node for name in node.input} | outputs
    kept = [t for t in model.graph.initializer if t.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)

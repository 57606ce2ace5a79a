"""Checks that a Q/DQ ONNX graph is one TensorRT builds an INT8 engine from, and fails loudly when not.

TensorRT's explicit-quantization rules, as its developer guide and its Quantize/Dequantize layer reference state
them (TensorRT 8.5 to 11):

- the scale is a build-time constant with all coefficients positive: a scalar (per-tensor) or a 1-D tensor
  (per-channel);
- the zero point may be left out (TensorRT assumes 0); when given it has the scale's shape, is signed int8 (TensorRT
  quantizes symmetrically to INT8, FP8 or INT4, never to uint8) and every coefficient is 0;
- activations are quantized per tensor; per-channel scales only on a weighted layer's constant weights, along its
  output-channel axis (Conv's K at axis 0, ConvTranspose's at axis 1, a MatMul/Gemm weight's output columns);
  a per-tensor weight is legal (a scalar scale with no ``axis`` is per-tensor whatever ONNX's default axis says);
- biases stay in float (an int32 bias DequantizeLinear is an ONNX Runtime CPU idiom TensorRT does not take);
- opset 13..17: per-channel Q/DQ appears in 13, TensorRT 8.5 (JetPack 5) parses up to 17.

Constants may reach a Q/DQ through ``Constant``, ``Identity`` and ``Cast`` nodes (PyTorch and ModelOpt exports
put them there); the lint follows them. A graph that breaks a rule would fail to build, or build into a slow or
wrong engine, on the device, far from here, so the quantizer lints its output before writing a bundle.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge.errors import EdgeError

OPSETS = range(13, 18)
WEIGHT_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}  # op type → index of its weight input
QDQ = ("QuantizeLinear", "DequantizeLinear")
PASS_THROUGH = ("Identity", "Cast")  # nodes a constant may pass through on its way to a Q/DQ or a layer


class QdqLintError(EdgeError):
    """The quantized graph breaks a rule of TensorRT's explicit quantization (exit 4: a bug, not bad input)."""


class _Graph:
    """Producers and build-time constants of a graph, seen through Constant/Identity/Cast nodes."""

    def __init__(self, model: onnx.ModelProto):
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.producers = {out: node for node in model.graph.node for out in node.output}

    def source(self, name: str) -> str:
        """The name behind any chain of Identity/Cast nodes."""
        while name in self.producers and self.producers[name].op_type in PASS_THROUGH:
            name = self.producers[name].input[0]
        return name

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when it is a build-time constant, with the dtype the graph gives it."""
        node = self.producers.get(name)
        if node is not None and node.op_type in PASS_THROUGH:
            value = self.constant(node.input[0])
            if value is None or node.op_type == "Identity":
                return value
            return value.astype(helper.tensor_dtype_to_np_dtype(_attribute(node, "to")))
        if node is not None and node.op_type == "Constant":
            attribute = next((a for a in node.attribute if a.name == "value"), None)
            return None if attribute is None else numpy_helper.to_array(attribute.t)
        return numpy_helper.to_array(self.initializers[name]) if name in self.initializers else None

    def producer(self, name: str) -> onnx.NodeProto | None:
        return self.producers.get(self.source(name))


def _attribute(node: onnx.NodeProto, name: str, default=None):
    found = next((a for a in node.attribute if a.name == name), None)
    return default if found is None else helper.get_attribute_value(found)


def lint_qdq(model: onnx.ModelProto) -> int:
    """Raises :class:`QdqLintError` naming the first node that breaks a rule; returns the number of Q/DQ nodes."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in OPSETS:
        raise QdqLintError(f"quantized graph has opset {opset}; TensorRT's Q/DQ needs {OPSETS[0]}..{OPSETS[-1]}")
    graph = _Graph(model)
    nodes = [node for node in model.graph.node if node.op_type in QDQ]
    if not nodes:
        raise QdqLintError("quantized graph has no QuantizeLinear/DequantizeLinear node")
    weights = _weight_axes(model, graph)
    for node in nodes:
        _check_node(node, graph, weights)
    return len(nodes)


def _weight_axes(model: onnx.ModelProto, graph: _Graph) -> dict[str, tuple[str, int, int, int]]:
    """Q/DQ node name → (layer, output-channel axis, channels, weight rank) for the Q/DQ nodes on a layer's
    constant weight."""
    axes: dict[str, tuple[str, int, int, int]] = {}
    for layer in model.graph.node:
        index = WEIGHT_INPUTS.get(layer.op_type)
        if index is None or len(layer.input) <= index:
            continue
        dq = graph.producer(layer.input[index])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue  # a weight left in float (the layer was kept in float)
        q = graph.producer(dq.input[0])
        weight = graph.constant(q.input[0] if q is not None and q.op_type == "QuantizeLinear" else dq.input[0])
        if weight is None:
            continue  # an activation through Q/DQ (MatMul of two tensors): per-tensor like any activation
        axis = _output_axis(layer, weight.ndim)
        where = f"{layer.op_type} '{layer.name}'"
        for node in (dq, q) if q is not None and q.op_type == "QuantizeLinear" else (dq,):
            axes[node.name] = (where, axis, weight.shape[axis], weight.ndim)
    return axes


def _output_axis(layer: onnx.NodeProto, rank: int) -> int:
    if layer.op_type == "ConvTranspose":
        return 1
    if layer.op_type == "Gemm":
        return 0 if _attribute(layer, "transB", 0) else 1
    if layer.op_type == "MatMul":
        return rank - 1
    return 0


def _check_node(node: onnx.NodeProto, graph: _Graph, weights: dict[str, tuple[str, int, int, int]]) -> None:
    where = f"{node.op_type} '{node.name}'"
    scale = graph.constant(node.input[1]) if len(node.input) > 1 else None
    if scale is None or scale.ndim > 1 or not (scale > 0).all():
        raise QdqLintError(f"{where}: scale must be a positive build-time constant, scalar or 1-D")
    zero_point = graph.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros((), np.int8)
    if zero_point is None:
        raise QdqLintError(f"{where}: zero point is not a build-time constant (TensorRT needs it to be 0)")
    if zero_point.dtype.name != "int8":
        kind = "a bias quantized to int32" if zero_point.dtype.name == "int32" else f"{zero_point.dtype.name}, not int8"
        raise QdqLintError(f"{where}: zero point is {kind} (TensorRT takes signed int8 Q/DQ, biases in float)")
    if zero_point.any():
        raise QdqLintError(f"{where}: zero point is not 0 (TensorRT quantizes symmetrically)")
    if zero_point.shape != scale.shape and zero_point.size != 1:
        raise QdqLintError(f"{where}: zero point of shape {zero_point.shape} for a scale of shape {scale.shape}")
    value = graph.constant(node.input[0])
    if node.op_type == "DequantizeLinear" and value is not None and value.dtype.name == "int32":
        raise QdqLintError(f"{where}: an int32 (bias) tensor is quantized; TensorRT wants biases in float")
    if scale.size == 1:
        return  # per-tensor (a scalar, whatever ONNX's default axis says): legal on activations and weights alike
    layer = weights.get(node.name)
    if layer is None:
        raise QdqLintError(f"{where}: {scale.size} scales on an activation; TensorRT quantizes activations per "
                           f"tensor (per-channel scales only on a layer's constant weights)")
    name, axis, channels, rank = layer
    given = _attribute(node, "axis", 1)
    if given % rank != axis:
        raise QdqLintError(f"{where} (weight of {name}): per-channel axis {given}, but the output channels are on "
                           f"axis {axis}")
    if scale.size != channels:
        raise QdqLintError(f"{where} (weight of {name}): {scale.size} scales for {channels} output channels")

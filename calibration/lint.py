"""Checks that a Q/DQ ONNX graph is the kind TensorRT builds an INT8 engine from, and fails loudly when not.

TensorRT's explicit quantization wants: signed int8 Q/DQ with zero point 0 (symmetric), per-channel scales on
weights (per-tensor weights cost accuracy), biases left in float (TensorRT fuses and quantizes them itself;
an int32 bias DQ is an ONNX Runtime CPU idiom it does not take), and opset 13..17 (per-channel Q/DQ appears in
13; TensorRT 8.5, JetPack 5, parses up to 17). A graph that breaks a rule would build into a slow or wrong
engine on the device, far from here, so the quantizer lints its output before writing a bundle.
"""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from edge.errors import EdgeError

OPSETS = range(13, 18)
WEIGHT_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}  # op type → index of its weight input
QDQ = ("QuantizeLinear", "DequantizeLinear")


class QdqLintError(EdgeError):
    """The quantized graph breaks a rule of TensorRT's explicit quantization (exit 4: a bug, not bad input)."""


def lint_qdq(model: onnx.ModelProto) -> int:
    """Raises :class:`QdqLintError` naming the first node that breaks a rule; returns the number of Q/DQ nodes."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset not in OPSETS:
        raise QdqLintError(f"quantized graph has opset {opset}; TensorRT's Q/DQ needs {OPSETS[0]}..{OPSETS[-1]}")
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    nodes = [node for node in model.graph.node if node.op_type in QDQ]
    if not nodes:
        raise QdqLintError("quantized graph has no QuantizeLinear/DequantizeLinear node")
    for node in nodes:
        _check_node(node, constants, producers)
    for node in model.graph.node:
        if node.op_type in WEIGHT_INPUTS and len(node.input) > WEIGHT_INPUTS[node.op_type]:
            _check_weight(node, WEIGHT_INPUTS[node.op_type], constants, producers)
    return len(nodes)


def _check_node(node: onnx.NodeProto, constants: dict, producers: dict) -> None:
    where = f"{node.op_type} '{node.name}'"
    if len(node.input) < 3 or node.input[2] not in constants:
        raise QdqLintError(f"{where}: no constant zero point (TensorRT needs an explicit int8 zero point of 0)")
    zero_point = constants[node.input[2]]
    if zero_point.dtype.name != "int8":
        kind = "a bias quantized to int32" if zero_point.dtype.name == "int32" else f"{zero_point.dtype.name}, not int8"
        raise QdqLintError(f"{where}: zero point is {kind} (TensorRT takes signed int8 Q/DQ, biases in float)")
    if zero_point.any():
        raise QdqLintError(f"{where}: zero point is not 0 (TensorRT quantizes symmetrically)")
    scale = constants.get(node.input[1])
    if scale is None or not (scale > 0).all():
        raise QdqLintError(f"{where}: scale must be a positive constant")
    if node.op_type == "DequantizeLinear" and node.input[0] in constants and \
            constants[node.input[0]].dtype.name == "int32":
        raise QdqLintError(f"{where}: an int32 (bias) tensor is quantized; TensorRT wants biases in float")


def _check_weight(node: onnx.NodeProto, index: int, constants: dict, producers: dict) -> None:
    """A quantized weight reaches its layer through a DQ with one scale per output channel."""
    dq = producers.get(node.input[index])
    if dq is None or dq.op_type != "DequantizeLinear":
        return  # a weight left in float (the node was kept in float), or an activation (MatMul of two tensors)
    weight = constants.get(dq.input[0])
    if weight is None and dq.input[0] in producers:  # float weight → Q → DQ (the AddQDQPairToWeight form)
        weight = constants.get(producers[dq.input[0]].input[0])
    if weight is None:
        return  # an activation fed through Q/DQ
    scale = constants[dq.input[1]]
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if weight.ndim > 1 and weight.shape[axis] > 1 and scale.size != weight.shape[axis]:
        raise QdqLintError(f"DequantizeLinear '{dq.name}' (weight of {node.op_type} '{node.name}'): "
                           f"{scale.size} scale(s) for {weight.shape[axis]} channels; weights must be per-channel")

"""Channel equalization: an fp32 graph rescaled so that one per-tensor int8 scale fits every channel of a layer input.

TensorRT quantizes activations per tensor. When the channels of a convolution's input live on scales hundreds of
times apart (YOLOX-nano's stem output: ~700×), the one scale the widest channel needs rounds the narrow ones to
zero. A convolution is linear in each input channel, so multiplying input channel ``i`` by ``s_i`` and dividing the
weights that read it by ``s_i`` leaves the output unchanged (exactly, up to float rounding; zero padding stays
zero). Choosing ``s_i`` so that every channel reaches the same range makes the per-tensor scale fit them all:

- a convolution whose groups read one channel each (depthwise, and any multiplier of it): each output channel's
  weights see a single ``s_i``, so per-channel weight scales absorb it exactly — ``s_i = range_max / range_i``;
- a convolution whose groups read several channels: the same weight scale now covers several ``1/s_i``, so the
  range is shared between activation and weights (Nagel et al., *Data-Free Quantization*, 2019, balanced on the
  measured activation range instead of the previous layer's weights): ``s_i = sqrt(w_i · a_max / (a_i · w_max))``.

``x · s`` is folded into the producing convolution's output channels when only a positively homogeneous activation
(ReLU, PReLU, LeakyReLU) stands between them and nothing else reads the tensor (cross-layer equalization, free at
run time); otherwise (SiLU, a tensor read elsewhere, a graph input) a ``Mul`` by a per-channel constant is placed
in front of the convolution, a pointwise op TensorRT fuses into its neighbours. Activation ranges come from the
calibration frames (per-channel absolute maximum), never from the gate's held-out frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge.backends.onnxruntime import open_session

HOMOGENEOUS = ("Relu", "PRelu", "LeakyRelu")  # f(s·x) = s·f(x) for s > 0, channel by channel
MAX_SCALE = 1e4  # no channel is scaled by more than this (or less than its inverse)
DEAD_CHANNEL = 1e-6  # channels whose range is below this share of the widest are left as they are
MIN_SPREAD = 4.0  # inputs whose channel ranges are within this factor of each other are left alone


def equalize(prepared: Path, out: Path, batches: Iterable[np.ndarray], input_name: str) -> tuple[Path, int]:
    """Writes the equalized model to ``out``; returns it and the number of convolution inputs rescaled."""
    model = onnx.load(str(prepared))
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in _initializers(model)]
    ranges = channel_ranges(model, sorted({n.input[0] for n in convs}), batches, input_name, out)
    rescaled = sum(_equalize_input(model, conv, ranges[conv.input[0]]) for conv in convs)
    _sort_nodes(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out, rescaled


def channel_ranges(model: onnx.ModelProto, tensors: list[str], batches: Iterable[np.ndarray], input_name: str,
                   scratch: Path) -> dict[str, np.ndarray]:
    """Per-channel absolute maximum (axis 1) of ``tensors`` over the batches, from one ONNX Runtime session."""
    return channel_ranges_and_means(model, tensors, batches, input_name, scratch)[0]


def channel_ranges_and_means(model: onnx.ModelProto, tensors: list[str], batches: Iterable[np.ndarray],
                             input_name: str, scratch: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-channel absolute maximum and mean (axis 1) of ``tensors`` over the batches, from one ORT session
    (``scratch``: a file name the probing model is written beside)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors if t not in known)
    path = scratch.with_suffix(".probe.onnx")
    onnx.save(probe, str(path))
    session = open_session(path, fuse_int8=False)  # Q/DQ as TensorRT computes them (calibration.measure)
    names = [o.name for o in session.get_outputs()]
    wanted = [names.index(t) for t in tensors]
    ranges: dict[str, np.ndarray] = {}
    sums: dict[str, np.ndarray] = {}
    count = 0
    for batch in batches:
        values = session.run(None, {input_name: batch})
        count += 1
        for tensor, index in zip(tensors, wanted):
            axes = tuple(i for i in range(values[index].ndim) if i != 1)
            peak = np.abs(values[index]).max(axis=axes)
            ranges[tensor] = np.maximum(ranges.get(tensor, peak), peak)
            sums[tensor] = sums.get(tensor, 0) + values[index].mean(axis=axes, dtype=np.float64)
    path.unlink()
    return ranges, {tensor: total / max(count, 1) for tensor, total in sums.items()}


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _consumers(model: onnx.ModelProto, tensor: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if tensor in n.input]


def _group(conv: onnx.NodeProto) -> int:
    return next((a.i for a in conv.attribute if a.name == "group"), 1)


def _input_scales(weight: np.ndarray, group: int, activation: np.ndarray) -> np.ndarray | None:
    """``s`` per input channel (see the module docstring), or None when the channels need no equalizing."""
    peak = activation.max()
    live = activation > peak * DEAD_CHANNEL
    if peak <= 0 or activation[live].min() * MIN_SPREAD > peak:
        return None
    per_group = weight.shape[1]
    if per_group == 1:
        scales = peak / np.where(live, activation, peak)
    else:
        grouped = np.abs(weight).reshape(group, -1, per_group, *weight.shape[2:])
        reads = grouped.max(axis=(1, *range(3, grouped.ndim))).reshape(-1)  # per input channel: its largest weight
        balance = (reads * peak) / (np.where(live, activation, peak) * max(reads.max(), np.finfo(np.float32).tiny))
        scales = np.sqrt(np.where(live & (reads > 0), balance, 1.0))
    return np.clip(scales, 1 / MAX_SCALE, MAX_SCALE).astype(np.float32)


def _equalize_input(model: onnx.ModelProto, conv: onnx.NodeProto, activation: np.ndarray) -> bool:
    initializers = _initializers(model)
    weight = numpy_helper.to_array(initializers[conv.input[1]])
    group = _group(conv)
    if activation.shape[0] != weight.shape[1] * group:
        return False
    scales = _input_scales(weight, group, activation)
    if scales is None:
        return False
    outputs, per_group = weight.shape[0], weight.shape[1]
    reads = (np.arange(outputs) // (outputs // group))[:, None] * per_group + np.arange(per_group)[None, :]
    compensated = weight / scales[reads].reshape(outputs, per_group, *([1] * (weight.ndim - 2)))
    _set(model, conv, 1, compensated.astype(weight.dtype), "equalized")
    if not _fold_into_producer(model, conv.input[0], scales):
        _insert_mul(model, conv, scales)
    return True


def _set(model: onnx.ModelProto, node: onnx.NodeProto, index: int, value: np.ndarray, tag: str) -> None:
    """Gives ``node`` its own initializer for input ``index`` (others may share the old one)."""
    name = f"{node.input[index]}_{tag}_{node.name or id(node)}"
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    node.input[index] = name


def _fold_into_producer(model: onnx.ModelProto, tensor: str, scales: np.ndarray) -> bool:
    """Scales the output channels of the convolution that makes ``tensor`` (through at most one homogeneous
    activation) when nothing else reads the tensors on the way; False when that is not the case."""
    producers = {out: n for n in model.graph.node for out in n.output}
    outputs = {o.name for o in model.graph.output}
    node, path = producers.get(tensor), [tensor]
    if node is not None and node.op_type in HOMOGENEOUS:
        path.append(node.input[0])
        node = producers.get(node.input[0])
    initializers = _initializers(model)
    if node is None or node.op_type != "Conv" or node.input[1] not in initializers:
        return False
    if any(t in outputs or len(_consumers(model, t)) != 1 for t in path):
        return False
    weight = numpy_helper.to_array(initializers[node.input[1]])
    if weight.shape[0] != len(scales):
        return False
    _set(model, node, 1, (weight * scales.reshape(-1, *([1] * (weight.ndim - 1)))).astype(weight.dtype), "folded")
    if len(node.input) > 2 and node.input[2]:
        _set(model, node, 2, (numpy_helper.to_array(initializers[node.input[2]]) * scales).astype(np.float32), "folded")
    return True


def _insert_mul(model: onnx.ModelProto, conv: onnx.NodeProto, scales: np.ndarray) -> None:
    """``conv``'s input times ``scales`` per channel, through a new ``Mul`` placed just before ``conv``."""
    source = conv.input[0]
    name = f"{source}_equalized_{conv.name}"
    shape = (1, -1, *([1] * (len(_initializers(model)[conv.input[1]].dims) - 2)))
    model.graph.initializer.append(numpy_helper.from_array(scales.reshape(shape), f"{name}_gain"))
    model.graph.node.append(helper.make_node("Mul", [source, f"{name}_gain"], [name], f"{conv.name}_equalize"))
    conv.input[0] = name  # the Mul goes in front of the conv when the nodes are sorted, at the end


def _sort_nodes(model: onnx.ModelProto) -> None:
    """Topological order (ONNX requires it), keeping the original order wherever it already holds."""
    ready = {i.name for i in model.graph.input} | set(_initializers(model)) | {""}
    pending, ordered = list(model.graph.node), []
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError(f"equalized graph has a cycle or a missing input at node '{waiting[0].name}'")
        pending = waiting
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del model.graph.node[:]
    model.graph.node.extend(copies)

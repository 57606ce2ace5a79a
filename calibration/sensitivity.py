"""Which layers lose most when quantized: the ranking the accuracy gate leaves layers in float by.

Every quantized tensor passes through a QuantizeLinear → DequantizeLinear pair; the noise it adds is
``pre - post`` of that pair, measured here on calibration frames (never the gate's held-out frames) as ORT's
``qdq_loss_debug`` measures it, the signal-to-quantization-noise ratio (SQNR, dB) — but per channel, keeping
the worst channel. One scale covers a whole tensor, so a tensor whose channels live on different scales (a
detection head concatenating raw box offsets with 0..1 scores) can have a fine overall SQNR while its small
channels are wiped out; the worst channel shows it. A node's sensitivity is the worst SQNR of the tensors it
reads or writes, and the most sensitive nodes are kept in float first.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio as sqnr

from calibration.lint import QDQ
from edge.backends.onnxruntime import open_session


def rank_nodes(quantized: Path, batches: Iterable[np.ndarray], input_name: str, scratch: Path) -> list[str]:
    """Names of the quantized graph's compute nodes, most sensitive first (only nodes touching a Q/DQ pair)."""
    model = onnx.load(str(quantized))
    pairs = _qdq_pairs(model)
    wanted = {name for pair in pairs.values() for name in pair}
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in sorted(wanted - known))
    probe = scratch / "sensitivity.onnx"
    onnx.save(model, str(probe))
    session = open_session(probe, fuse_int8=False)  # Q/DQ as TensorRT computes them (calibration.measure)
    names = [o.name for o in session.get_outputs()]
    collected: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for name, value in zip(names, session.run(None, {input_name: batch})):
            if name in wanted:
                collected.setdefault(name, []).append(value)
    noise = {tensor: _worst_channel_sqnr(collected[pre], collected[post]) for tensor, (pre, post) in pairs.items()}
    producers = {out: n for n in model.graph.node for out in n.output}
    scores: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type in QDQ:
            continue
        touched = [noise[t] for t in _float_names(node, producers) if t in noise]
        if touched:
            scores[node.name] = min(touched)
    return sorted(scores, key=scores.__getitem__)


def _qdq_pairs(model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """Activation tensor → (its value before quantization, its value after dequantization)."""
    constants = {t.name for t in model.graph.initializer}
    dequantize = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {n.input[0]: (n.input[0], dequantize[n.output[0]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in constants and n.output[0] in dequantize}


def _float_names(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> list[str]:
    """The fp32 names of the tensors a node writes and reads, seen through the Q/DQ pairs in front of it."""
    names = list(node.output)
    for tensor in node.input:
        dq = producers.get(tensor)
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear":
            names.append(q.input[0])
    return names


def _worst_channel_sqnr(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    """The lowest SQNR over the tensor's channels (axis 1 of an image tensor, else its smallest non-batch axis)."""
    pre, post = np.concatenate(before), np.concatenate(after)
    if pre.ndim < 2:
        return sqnr(pre, post)
    axis = 1 if pre.ndim == 4 else 1 + int(np.argmin(pre.shape[1:]))
    pre, post = np.moveaxis(pre, axis, 0), np.moveaxis(post, axis, 0)
    return min(sqnr(p, q) for p, q in zip(pre, post))

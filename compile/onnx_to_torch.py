"""An ONNX model as a PyTorch module (onnx2torch), so that an existing export can be pruned and distilled.

Exports made for inference often hard-code the batch size in ``Reshape`` shapes (YOLOX flattens each head
to ``[1, 85, -1]``); converted as is, a batch of eight would silently be folded into one long row of
predictions. Such a leading ``1`` is rewritten to ``0`` — ONNX's "copy this dimension from the input" — so
the module trains on batches and still exports back to the same graph for batch 1. A constant shape without
zeros reads the same whatever ``allowzero`` says, so that attribute (set by PyTorch's dynamo exporter, and
refused by onnx2torch) is dropped from such a ``Reshape`` first. ``Resize`` nodes of such exports carry
constant ``sizes`` of ``[1, C, H, W]``, which onnx2torch compares with the input's batch; ``interpolate``
resizes only H and W anyway, so that comparison is switched off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edge.errors import BadInputError


def convert_onnx(path: str | Path) -> nn.Module:
    """The ONNX file as an ``fx.GraphModule`` in eval mode, batch-agnostic (see the module docstring)."""
    from onnx2torch import convert  # imported here: only this path needs it

    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf and file errors alike
        raise BadInputError(f"{path}: not a loadable ONNX model ({e})") from None
    _free_reshape_batch(model)
    try:
        module = convert(model).eval()
    except NotImplementedError as e:  # onnx2torch names the operator it lacks
        raise BadInputError(f"{path}: onnx2torch cannot convert it: {e}") from None
    _free_resize_batch(module)
    return module


def _free_reshape_batch(model: onnx.ModelProto) -> None:
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        tensor = initializers[node.input[1]]
        shape = numpy_helper.to_array(tensor)
        if shape.ndim != 1 or np.any(shape == 0):
            continue
        kept = [a for a in node.attribute if a.name != "allowzero"]
        del node.attribute[:]
        node.attribute.extend(kept)
        if len(shape) > 1 and shape[0] == 1:
            shape = shape.copy()
            shape[0] = 0
            tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))


def _free_resize_batch(module: nn.Module) -> None:
    from onnx2torch.node_converters.resize import OnnxResize

    for layer in module.modules():
        if isinstance(layer, OnnxResize):
            layer.ignore_bs_ch_size = True


def max_abs_difference(module: nn.Module, path: str | Path, example: np.ndarray) -> float:
    """Largest absolute difference between the module and ONNX Runtime on ``example`` over all outputs."""
    from edge.backends.onnxruntime import open_session

    session = open_session(Path(path), threads=None)
    reference = session.run(None, {session.get_inputs()[0].name: example})
    with torch.no_grad():
        outputs = module(torch.from_numpy(example))
    outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
    return max(float(np.abs(ours.numpy() - theirs).max()) for ours, theirs in zip(outputs, reference))

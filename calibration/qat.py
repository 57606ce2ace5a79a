"""Quantization-aware distillation (``--qat STEPS``): the int8 model trained to reproduce fp32 on the user's footage.

Where post-training quantization falls short, the weights can learn to live with the rounding: the (equalized)
fp32 ONNX model becomes a PyTorch module (onnx2torch, :func:`compile.onnx_to_torch.convert_onnx`), NVIDIA ModelOpt's
torch quantizer puts fake-quantizers on every convolution and linear layer (int8, per-channel weights, per-tensor
activations, ranges from the calibration frames: ``mtq.INT8_DEFAULT_CFG``), and the distillation engine of
``edge compile --distill`` (:class:`compile.distill.Distiller`) trains it toward the fp32 module's outputs with the
bundle's own distillation loss. No labels: fp32 is the teacher, the calibration frames are the data. The result
is exported with PyTorch's TorchScript exporter at opset 17, where ModelOpt's quantizers become
QuantizeLinear/DequantizeLinear pairs (scales in Constant nodes, which :mod:`calibration.lint` follows).

ModelOpt runs on the CPU here (its torch part needs no GPU); its ``[onnx]`` extra is not wanted (it pulls in
onnxruntime-gpu and opset 19).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from calibration.ptq import quiet
from compile.distill import DistillConfig, Distiller, seed_everything
from compile.losses import task_loss
from compile.onnx_to_torch import convert_onnx
from edge.bundle import Bundle
from edge.errors import UsageError
from edge.progress import say

BATCH = 4
# Adam moves every weight by about the learning rate per step whatever its size, and equalization leaves weights
# up to 1e4 apart in scale (a depthwise channel divided by its gain): at 1e-4 or 1e-5, two steps already double
# YOLOX-nano's objectness error; at 1e-6 the error falls (measured on held-out frames).
LEARNING_RATE = 1e-6
TEMPERATURE = 1.0  # the student copies the teacher's scores as they are, not softened
RANGE_FRAMES = 32  # calibration frames ModelOpt measures the initial ranges on


@dataclass(frozen=True)
class QatResult:
    quantized: Path  # Q/DQ ONNX (opset 17) for TensorRT
    weights: Path  # the same trained weights without quantizers (fp32 ONNX), for the CPU variant
    steps: int
    losses: list[float]


def quantization_aware_distillation(fp32: Path, bundle: Bundle, tensors: np.ndarray, steps: int,
                                    scratch: Path, seed: int = 0) -> QatResult:
    """Trains an int8 copy of the ``fp32`` ONNX model for about ``steps`` batches on the preprocessed calibration
    ``tensors`` ``[N, ...]``; writes both exports into ``scratch``."""
    try:
        import modelopt.torch.quantization as mtq
    except ModuleNotFoundError as e:
        raise UsageError(f"--qat needs NVIDIA ModelOpt's torch quantizer (pip install 'edge[compile]'): {e}") from None
    seed_everything(seed)
    teacher = convert_onnx(fp32)
    student = copy.deepcopy(teacher)
    frames = [torch.from_numpy(np.ascontiguousarray(t)) for t in tensors]
    with torch.no_grad(), quiet():
        mtq.quantize(student, mtq.INT8_DEFAULT_CFG, lambda model: [model(f[None]) for f in frames[:RANGE_FRAMES]])
    batches = math.ceil(len(frames) / BATCH)
    epochs = max(1, round(steps / batches))
    config = DistillConfig(sources=("calibration frames",), frames=len(frames), epochs=epochs, batch=BATCH,
                           lr=LEARNING_RATE, relative_lr=False,  # the plain rate this module was measured at
                           weight_decay=0.0, temperature=TEMPERATURE, seed=seed, device="cpu",
                           views=0)  # preprocessed tensors, not BGR frames: no augmented views to cache
    outputs = _output_shapes(fp32)
    loss = task_loss(bundle.decoder, TEMPERATURE, outputs, (bundle.input.width, bundle.input.height))
    say(f"qat: {epochs} epoch(s) of {batches} batches of {BATCH} calibration frames")
    distiller = Distiller(teacher, student, loss, torch.stack, config, frozen_while_warming=lambda name: False)
    losses = distiller.fit(frames)
    student.eval()
    quantized = _export(student, fp32, bundle, scratch / "qat.onnx")
    mtq.disable_quantizer(student, "*")
    weights = _export(student, fp32, bundle, scratch / "qat.fp32.onnx")
    return QatResult(quantized, weights, epochs * batches, losses)


def _output_shapes(path: Path) -> list[list[int]]:
    model = onnx.load(str(path))
    return [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]


def _export(module: torch.nn.Module, fp32: Path, bundle: Bundle, out: Path) -> Path:
    """TorchScript export at opset 17 with the fp32 model's input and output names (the bundle's decoder reads
    outputs by name)."""
    names = [o.name for o in onnx.load(str(fp32)).graph.output]
    example = torch.zeros(bundle.input.shape, dtype=torch.float32)
    with torch.no_grad():
        torch.onnx.export(module, (example,), str(out), opset_version=17, dynamo=False,
                          input_names=[bundle.input.name], output_names=names)
    return out

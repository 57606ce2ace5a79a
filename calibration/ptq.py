"""Post-training INT8 quantization of an fp32 ONNX model with ONNX Runtime's quantization tools.

Two variants of one calibration:

- ``s8s8`` (TensorRT): QDQ, int8 activations and weights, symmetric (zero point 0), per-channel weights,
  biases left in float, opset 13..17 — the explicit-quantization graph TensorRT builds an INT8 engine from
  (:mod:`calibration.lint` checks those rules).
- ``u8s8`` (ONNX Runtime on a CPU): uint8 activations (asymmetric: ReLU-like ranges use all 256 levels),
  int8 weights, QDQ, which ORT's x86 and Arm int8 kernels are written for. Whether it beats fp32 depends on the
  CPU, so the bundle records what was measured.

Activation ranges are computed once per calibration method and saved as ORT's calibration cache; both variants
and every "keep these layers in float" retry reuse them instead of running the calibration frames again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from calibration.lint import OPSETS
from edge.errors import BadInputError

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
# ORT's calibrators keep every intermediate tensor of the frames they are given (~150 MB a frame for YOLOX-nano):
# they are given this many at a time, and merge.
CALIBRATION_STRIDE = 8
# Where the Q/DQ pairs go: the inputs of the weighted layers, as TensorRT's placement recommendations say.
# Quantizing everything ORT can (Concat, Add, Sigmoid, Resize, ...) puts one per-tensor scale on tensors that
# mix ranges, such as YOLOX's output concatenating pixel boxes with 0..1 scores, and wipes out the small ones.
WEIGHTED_OPS = ["Conv", "ConvTranspose", "MatMul", "Gemm"]
# Ops whose ``noop_with_empty_axes`` attribute appeared in opset 18 (ReduceSum has had it since 13): the
# version converter moves their axes back to an attribute but leaves this one, which opset 17 rejects.
_REDUCE_18 = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
              "ReduceLogSumExp", "ReduceSumSquare"}


@dataclass(frozen=True)
class Variant:
    """One Q/DQ flavour: what the activations and weights become, and whether activations are symmetric."""

    name: str
    activations: QuantType
    weights: QuantType
    symmetric_activations: bool
    quantize_outputs: bool


# TensorRT fuses a weighted layer's output into the next Q/DQ itself: outputs stay float in the graph.
TENSORRT = Variant("s8s8", QuantType.QInt8, QuantType.QInt8, True, False)
# ONNX Runtime runs a Conv in int8 (QLinearConv) only with a Q on its output too.
CPU = Variant("u8s8", QuantType.QUInt8, QuantType.QInt8, False, True)


class TensorReader(CalibrationDataReader):
    """ORT's calibration data reader over preprocessed input tensors (one feed per frame), rewindable.

    ``set_range`` narrows it to a window of frames: ORT calibrates in strides (see :func:`quantize`)."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]):
        self.input_name, self.batches = input_name, batches
        self.position, self.end = 0, len(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return {self.input_name: self.batches[self.position - 1]}

    def rewind(self) -> None:
        self.position, self.end = 0, len(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, min(end_index, len(self.batches))


def prepare(source: Path, out: Path) -> Path:
    """The fp32 model made ready to quantize: converted into opset 13..17, then ORT's pre-processing (shape
    inference, constant folding, BatchNorm folded into its convolution, so that one scale covers both)."""
    try:
        model = onnx.load(str(source))
    except Exception as e:  # onnx raises DecodeError and several others for a damaged file
        raise BadInputError(f"{source}: not a readable ONNX model ({e})") from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSETS[0])
    target = min(max(opset, OPSETS[0]), OPSETS[-1])
    if target != opset:
        model = version_converter.convert_version(model, target)
        if opset >= 18 > target:
            _drop_opset18_reduce_attribute(model)
    onnx.checker.check_model(model)
    converted = out.with_suffix(".opset.onnx")
    onnx.save(model, str(converted))
    quant_pre_process(str(converted), str(out), skip_symbolic_shape=True)
    converted.unlink()
    return out


def _drop_opset18_reduce_attribute(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.op_type in _REDUCE_18:
            kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
            del node.attribute[:]
            node.attribute.extend(kept)


def quantize(prepared: Path, out: Path, reader: TensorReader, method: str, variant: Variant, ranges: Path,
             exclude: Sequence[str] = ()) -> Path:
    """Writes the ``variant`` of ``prepared`` to ``out``, with the nodes in ``exclude`` kept in float.

    ``ranges`` is this method's calibration cache: computed from ``reader`` on the first call, reused after.
    """
    reader.rewind()
    stride = max(s for s in range(1, CALIBRATION_STRIDE + 1) if len(reader) % s == 0)
    quantize_static(
        str(prepared), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=variant.activations, weight_type=variant.weights, calibrate_method=METHODS[method],
        nodes_to_exclude=list(exclude), calibration_cache_path=ranges, op_types_to_quantize=WEIGHTED_OPS,
        extra_options={"ActivationSymmetric": variant.symmetric_activations, "WeightSymmetric": True,
                       "QuantizeBias": False, "CalibStridedMinMax": stride,
                       "OpTypesToExcludeOutputQuantization": [] if variant.quantize_outputs else WEIGHTED_OPS},
    )
    return out


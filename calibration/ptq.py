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

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from calibration.lint import OPSETS
from calibration.qdq_edit import weighted_only
from edge.errors import BadInputError
from edge.progress import bar

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
    float_weights: bool  # weights stay float behind their own Q → DQ pair (see :mod:`calibration.qdq_edit`)


# TensorRT fuses a weighted layer's output into the next Q/DQ itself: outputs stay float in the graph. Float weights
# with their Q/DQ pair are legal for TensorRT (it quantizes them at build time with the Q's scales) and let a layer
# go back to float by a graph edit.
TENSORRT = Variant("s8s8", QuantType.QInt8, QuantType.QInt8, True, False, True)
# ONNX Runtime runs a Conv in int8 (QLinearConv) only with a Q on its output too, and int8 weights.
CPU = Variant("u8s8", QuantType.QUInt8, QuantType.QInt8, False, True, False)


class TensorReader(CalibrationDataReader):
    """ORT's calibration data reader over preprocessed input tensors (one feed per frame), rewindable.

    ``set_range`` narrows it to a window of frames: ORT calibrates in strides (see :func:`quantize`)."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]):
        self.input_name, self.batches = input_name, batches
        self.position, self.end = 0, len(batches)
        self._bar = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        if self._bar is not None:
            self._bar.update(1)
        self.position += 1
        return {self.input_name: self.batches[self.position - 1]}

    def rewind(self) -> None:
        self.position, self.end = 0, len(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position, self.end = start_index, min(end_index, len(self.batches))

    @contextlib.contextmanager
    def progress(self, title: str) -> Iterator[None]:
        """A progress bar over the frames fed while inside (none when ``title`` is empty: nothing is fed)."""
        self._bar = bar(total=len(self.batches), desc=title, unit="frame") if title else None
        try:
            yield
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None


def convert_opset(source: Path, out: Path) -> Path:
    """The fp32 model in opset 13..17 (per-channel Q/DQ needs 13; TensorRT 8.5 parses up to 17), every node named
    (reports and the keep-in-float search name layers). Quantization-aware training starts here: onnx2torch
    converts this graph, not the one ORT's pre-processing fuses (it has no converter for SpaceToDepth)."""
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
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = next(n for n in (f"{node.op_type}_{index}", f"{node.op_type}_{index}_") if n not in taken)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def prepare(source: Path, out: Path) -> Path:
    """The fp32 model made ready to quantize: :func:`convert_opset`, then ORT's pre-processing (shape inference,
    constant folding, BatchNorm folded into its convolution, so that one scale covers both)."""
    converted = convert_opset(source, out.with_suffix(".opset.onnx"))
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
    model = onnx.load(str(prepared))
    with reader.progress(f"calibrating ({method})" if not ranges.is_file() else ""), quiet():
        quantize_static(
            model, str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=variant.activations, weight_type=variant.weights, calibrate_method=METHODS[method],
            nodes_to_exclude=list(exclude), calibration_cache_path=ranges, op_types_to_quantize=WEIGHTED_OPS,
            extra_options={"ActivationSymmetric": variant.symmetric_activations, "WeightSymmetric": True,
                           "QuantizeBias": False, "CalibStridedMinMax": stride, "DedicatedQDQPair": True,
                           "AddQDQPairToWeight": variant.float_weights,
                           "TensorQuantOverrides": _per_tensor_left_constants(model),
                           "OpTypesToExcludeOutputQuantization": [] if variant.quantize_outputs else WEIGHTED_OPS},
        )
    if variant.float_weights:
        onnx.save(weighted_only(onnx.load(str(out))), str(out))
    return out


def _per_tensor_left_constants(model: onnx.ModelProto) -> dict[str, list[dict]]:
    """A MatMul whose *first* input is the constant (``R @ X``: ESPNetv2 resamples with such matrices) gets a
    per-tensor scale on it: ORT would take per-channel scales along the constant's axis 1, the summed one, and
    TensorRT takes per-channel weights only on a MatMul's second input."""
    constants = {t.name for t in model.graph.initializer}
    return {n.input[0]: [{"symmetric": True}] for n in model.graph.node
            if n.op_type == "MatMul" and n.input[0] in constants}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """ORT's calibrators print a line per tensor ("Collecting tensor data ...", ranges, histograms) to stdout,
    which carries edge's report, and log at INFO; progress bars say the same in one line."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


"""Buffer planning for a TensorRT engine: from the engine's tensor descriptions to one fixed shape per tensor.

The TensorRT backend allocates every buffer once, so each I/O tensor needs a concrete shape before the first
frame. :func:`describe_tensors` reads the engine through the name-based API (8.5+). :func:`plan_inputs` is
pure: a static input keeps its shape, a dynamic one takes the bundle's shape (which must lie inside the
optimisation profile) or else the profile's optimum. Outputs are not planned from the engine, whose shapes
keep ``-1`` wherever they follow a dynamic input (the batch, or H/W of a fully convolutional model): the
backend sets the input shapes on an execution context and :func:`plan_buffers` takes the outputs' shapes
as the context resolves them; one still ``-1`` there is data-dependent and refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.backends.base import TensorInfo
from edge.errors import BadInputError

Shape = tuple[int, ...]
# TensorRT DataType → NumPy, by name. Not trt.nptype: it raises TypeError for BF16, FP8, INT4 and FP4 (no NumPy
# type), and 8.5's reads np.bool, which NumPy 1.24-1.26 do not have (python/packaging/.../tensorrt/__init__.py).
NUMPY_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
               "BOOL": np.bool_, "UINT8": np.uint8}


@dataclass(frozen=True)
class TensorDesc:
    """One I/O tensor as the engine reports it: ``-1`` marks a dynamic dimension; ``profile`` is the
    (min, opt, max) shape of a dynamic input in optimisation profile 0."""

    name: str
    is_input: bool
    shape: Shape
    dtype: np.dtype
    profile: tuple[Shape, Shape, Shape] | None = None

    def info(self) -> TensorInfo:
        return TensorInfo(self.name, tuple(d if d >= 0 else None for d in self.shape), self.dtype)


@dataclass(frozen=True)
class Buffer:
    """A planned buffer: the shape the backend allocates and binds for every run."""

    name: str
    is_input: bool
    shape: Shape
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def describe_tensors(engine: Any, trt: Any) -> tuple[TensorDesc, ...]:
    """The engine's I/O tensors in engine order (``num_io_tensors``, ``get_tensor_*``: TensorRT 8.5+)."""
    descs = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input and -1 in shape:
            low, opt, high = engine.get_tensor_profile_shape(name, 0)
            profile = (tuple(int(d) for d in low), tuple(int(d) for d in opt), tuple(int(d) for d in high))
        descs.append(TensorDesc(name, is_input, shape, numpy_dtype(name, engine.get_tensor_dtype(name)), profile))
    return tuple(descs)


def numpy_dtype(name: str, data_type: Any) -> np.dtype:
    """The NumPy dtype of a tensor's TensorRT ``DataType``, or :class:`BadInputError` for one NumPy lacks."""
    kind = getattr(data_type, "name", str(data_type).rsplit(".", 1)[-1])
    if kind not in NUMPY_TYPES:
        raise BadInputError(f"tensor '{name}' is {kind}, which has no NumPy type: edge's TensorRT backend needs "
                            f"I/O tensors of {', '.join(NUMPY_TYPES)} (export the model with float32 or float16 "
                            f"inputs and outputs)")
    return np.dtype(NUMPY_TYPES[kind])


def plan_inputs(tensors: Sequence[TensorDesc], requested: Mapping[str, Shape]) -> dict[str, Shape]:
    """A concrete shape for every input; ``requested`` gives input shapes (the bundle's). Raises
    :class:`BadInputError` naming the input when a request does not fit."""
    inputs = dict(_input_shape(t, requested.get(t.name)) for t in tensors if t.is_input)
    if not inputs:
        raise BadInputError("the engine has no input tensor")
    return inputs


def plan_buffers(tensors: Sequence[TensorDesc], inputs: Mapping[str, Shape],
                 resolved: Mapping[str, Shape]) -> tuple[Buffer, ...]:
    """Every tensor's buffer, in engine order: inputs as :func:`plan_inputs` planned them, outputs as an
    execution context with those input shapes set resolves them (``resolved``). Raises
    :class:`BadInputError` naming an output whose shape is still unknown (data-dependent)."""
    buffers = []
    for tensor in tensors:
        shape = inputs[tensor.name] if tensor.is_input else tuple(resolved[tensor.name])
        if -1 in shape:
            raise BadInputError(f"output '{tensor.name}' has a data-dependent shape {list(tensor.shape)}; edge's "
                                f"TensorRT backend needs outputs whose shape follows from the inputs'")
        buffers.append(Buffer(tensor.name, tensor.is_input, shape, tensor.dtype))
    return tuple(buffers)


def _input_shape(tensor: TensorDesc, wanted: Shape | None) -> tuple[str, Shape]:
    if tensor.profile is None:
        if wanted is not None and tuple(wanted) != tensor.shape:
            raise BadInputError(f"input '{tensor.name}': the bundle's shape {list(wanted)} differs from the "
                                f"engine's {list(tensor.shape)}")
        return tensor.name, tensor.shape
    low, opt, high = tensor.profile
    shape = tuple(wanted) if wanted is not None else opt
    fits_static = len(shape) == len(tensor.shape) and all(d == -1 or d == s for d, s in zip(tensor.shape, shape))
    if not fits_static or not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high)):
        raise BadInputError(f"input '{tensor.name}': shape {list(shape)} is outside the engine's profile "
                            f"(min {list(low)}, max {list(high)})")
    return tensor.name, shape

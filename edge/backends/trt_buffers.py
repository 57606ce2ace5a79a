"""Buffer planning for a TensorRT engine: from the engine's tensor descriptions to one fixed shape per tensor.

The TensorRT backend allocates every buffer once, so each I/O tensor needs a concrete shape before the first
frame. :func:`describe_tensors` reads the engine through the name-based API (8.5+); :func:`plan_buffers`
is pure: static tensors keep their shape, a dynamic input takes the bundle's shape (which must lie inside
the optimisation profile) or else the profile's optimum, and an output's dynamic batch follows the input's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.backends.base import TensorInfo
from edge.errors import BadInputError

Shape = tuple[int, ...]


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
        descs.append(TensorDesc(name, is_input, shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))), profile))
    return tuple(descs)


def plan_buffers(tensors: Sequence[TensorDesc], requested: Mapping[str, Shape]) -> tuple[Buffer, ...]:
    """A concrete shape for every tensor; ``requested`` gives input shapes (the bundle's). Raises
    :class:`BadInputError` naming the tensor when a request does not fit or an output shape is data-dependent."""
    inputs = [_input_shape(t, requested.get(t.name)) for t in tensors if t.is_input]
    if not inputs:
        raise BadInputError("the engine has no input tensor")
    batch = inputs[0][1][0]
    planned = dict(inputs)
    buffers = []
    for tensor in tensors:
        shape = planned[tensor.name] if tensor.is_input else _output_shape(tensor, batch)
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


def _output_shape(tensor: TensorDesc, batch: int) -> Shape:
    shape = list(tensor.shape)
    if shape and shape[0] == -1:
        shape[0] = batch
    if -1 in shape:
        raise BadInputError(f"output '{tensor.name}' has a data-dependent shape {list(tensor.shape)}; edge's "
                            f"TensorRT backend needs outputs of fixed shape")
    return tuple(shape)

"""TensorRT's own INT8 calibrator (implicit quantization, TensorRT 8.5–10.x), and its cache.

The engine builder attaches it when the bundle's ONNX has no Q/DQ nodes, so TensorRT must find the activation
ranges itself. It lives in the runtime because the builder runs on the device: a rebuild from a cached
calibration table needs the calibrator (TensorRT reads the table through ``read_calibration_cache`` and asks
for no batch) but no footage. The frames come from a *reader*, an iterable of preprocessed input batches
each of the engine input's calibration shape, as ONNX Runtime's ``CalibrationDataReader`` is; ``edge
build-engine --calib`` makes one from the user's footage (:mod:`calibration.tensorrt_feed`).

Written against the documented Python API (``IInt8EntropyCalibrator2``: the subclass calls the base
``__init__``; ``get_batch(names)`` returns a list of device pointers, or ``None`` when the data is spent;
``read_calibration_cache()`` returns the cache or ``None``; ``write_calibration_cache(cache)`` receives a
buffer). The API is deprecated from 10.1 and gone in 11, where only Q/DQ ONNX builds INT8
(:func:`edge.backends.trt_api.build_recipe` refuses calibration there before this module is reached).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.tensorrt import import_tensorrt
from edge.errors import BadInputError, UsageError
from edge.files import write_atomic
from edge.gpu.cuda import CudaContext

LOG = logging.getLogger(__name__)
# Preprocessed input batches, each a C-contiguous array of the engine input's calibration shape (for a dynamic
# input, the calibration profile's opt shape, which the builder sets to the bundle's).
CalibrationReader = Iterable[np.ndarray]


def read_calibration_cache(path: Path) -> bytes | None:
    """The cache's bytes, or ``None`` where there is none (TensorRT then calibrates from the frames)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    return data or None  # an empty file is no cache: TensorRT would reject it as corrupt


def write_calibration_cache(path: Path, cache: Any) -> None:
    """Writes the cache TensorRT hands back (any buffer) atomically: a build killed while writing leaves
    the old cache or the new one, never a truncated file that the next build would trust."""
    write_atomic(Path(path), bytes(memoryview(cache)))


def make_entropy_calibrator(reader: CalibrationReader, cache_path: Path) -> Any:
    """A ``tensorrt.IInt8EntropyCalibrator2`` fed from ``reader`` that keeps its cache in ``cache_path``.

    With a cache on disk TensorRT reads it and asks for no batch, and the reader is never read; without one,
    the reader must give at least one batch, or this says so before the build starts. CUDA is only touched
    when TensorRT asks for the first batch: the device buffer is allocated once then, in the primary context
    TensorRT uses, and freed when the reader is spent or by ``release()``, which the builder calls after the
    build whatever its outcome.
    """
    trt = import_tensorrt()
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise UsageError(f"--precision int8: TensorRT {trt.__version__} has no IInt8EntropyCalibrator2 "
                         f"(implicit INT8 calibration was removed in TensorRT 11); quantize the bundle with "
                         f"'edge quantize' to get a Q/DQ ONNX")
    cache_path = Path(cache_path)
    batches = iter(reader)
    shape: tuple[int, ...] | None = None
    if read_calibration_cache(cache_path) is None:
        first = next(batches, None)
        if first is None:
            raise BadInputError("--calib: the calibration sources gave no frames, and there is no calibration "
                                "cache")
        shape = first.shape
        batches = chain([first], batches)

    class EntropyCalibrator(base):
        """Entropy calibration (TensorRT's recommended algorithm for CNNs) over the reader's batches."""

        def __init__(self) -> None:
            base.__init__(self)  # pybind11 trampoline: the base must be initialised explicitly
            self.reader = reader
            self.cache_path = cache_path
            self.batches = 0  # batches handed to TensorRT
            self._context: Any = None
            self._device: Any = None

        def get_batch_size(self) -> int:
            """Informational for explicit-batch (ONNX) networks, which calibrate at the calibration profile's
            shape; deprecated in TensorRT 10."""
            return shape[0] if shape else 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            """One pointer: the network has one input (the builder refuses any other). The CUDA context is
            current only during the copy: a build that fails between two batches leaves none pushed."""
            batch = next(batches, None)
            if batch is None:
                LOG.info("calibration: %d batch(es) fed", self.batches)
                self.release()
                return None
            batch = np.ascontiguousarray(batch)
            if self._context is None:
                self._context = CudaContext()
            with self._context.active() as cuda:
                if self._device is None:
                    self._device = cuda.mem_alloc(batch.nbytes)
                cuda.memcpy_htod(self._device, batch)
            self.batches += 1
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return read_calibration_cache(self.cache_path)

        def write_calibration_cache(self, cache: Any) -> None:
            write_calibration_cache(self.cache_path, cache)

        def release(self) -> None:
            """Frees the device buffer; the builder calls it after the build, whether the build succeeded."""
            if self._device is not None:
                with self._context.active():
                    self._device.free()
                self._device = None
            if self._context is not None:
                self._context.close()
                self._context = None

    return EntropyCalibrator()

"""TensorRT's own INT8 calibrator (implicit quantization, TensorRT 8.5–10.x), fed from the user's footage.

``edge build-engine --precision int8 --calib SOURCE`` uses it when the bundle's ONNX has no Q/DQ nodes, so
TensorRT must find the activation ranges itself. It is two parts:

- :class:`CalibrationFeed`, pure NumPy, turns the preprocessed input tensors into the batches TensorRT asks
  for, and the cache helpers read and write the calibration cache. Both run anywhere and are tested here.
- :func:`make_entropy_calibrator` wraps the feed in a subclass of ``tensorrt.IInt8EntropyCalibrator2``
  whose ``get_batch`` copies each batch into one pycuda device allocation. It needs TensorRT and a GPU.

Written against the documented Python API (``IInt8EntropyCalibrator2``: the subclass calls the base
``__init__``; ``get_batch(names)`` returns a list of device pointers, or ``None`` when the data is spent;
``read_calibration_cache()`` returns the cache or ``None``; ``write_calibration_cache(cache)`` receives a
buffer). The API is deprecated from 10.1 and gone in 11, where only Q/DQ ONNX builds INT8
(:func:`edge.backends.trt_api.build_recipe` refuses calibration there before this module is reached).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.tensorrt import import_tensorrt
from edge.engines import write_atomic
from edge.errors import BadInputError, UsageError
from edge.gpu.cuda import CudaContext

LOG = logging.getLogger(__name__)


class CalibrationFeed:
    """Regroups preprocessed input tensors (``N × …``, any ``N``) into batches of one fixed shape.

    ``shape`` is the engine input's calibration shape (for a dynamic input, the calibration profile's
    ``opt`` shape, which :mod:`compile.engine` sets to the bundle's); by default the first tensor's shape.
    Each batch is a new C-contiguous array of that shape, in the tensors' own dtype (the ONNX input's,
    float32 for NCHW float bundles). A last batch with fewer frames than ``shape[0]`` is dropped and
    counted in :attr:`dropped`, not padded: repeated or blank frames would add activations that are not in
    the footage to the histograms entropy calibration fits, and TensorRT calibrators conventionally stop at
    the first incomplete batch.
    """

    def __init__(self, tensors: Iterable[np.ndarray], shape: Sequence[int] | None = None):
        self.shape = tuple(int(d) for d in shape) if shape is not None else None
        self.batches = 0  # batches handed out
        self.dropped = 0  # frames left over after the last full batch
        self._frames = self._split(tensors)
        self._pending: np.ndarray | None = None

    @property
    def batch_size(self) -> int:
        if self.shape is None:
            raise ValueError("the batch shape is known once the first tensor has been read")
        return self.shape[0]

    @property
    def frames(self) -> int:
        """Frames handed out in full batches."""
        return self.batches * self.batch_size if self.batches else 0

    def has_batch(self) -> bool:
        """Whether another full batch is available (reads ahead by one batch)."""
        if self._pending is None:
            self._pending = self._read_batch()
        return self._pending is not None

    def next_batch(self) -> np.ndarray | None:
        """The next full batch, or ``None`` once fewer frames than a batch remain."""
        if not self.has_batch():
            return None
        batch, self._pending = self._pending, None
        self.batches += 1
        return batch

    def __iter__(self) -> Iterator[np.ndarray]:
        while (batch := self.next_batch()) is not None:
            yield batch

    def _read_batch(self) -> np.ndarray | None:
        first = next(self._frames, None)
        if first is None:
            return None
        frames = [first, *islice(self._frames, self.batch_size - 1)]  # the first frame fixes the shape
        if len(frames) < self.batch_size:
            self.dropped += len(frames)
            return None
        return np.stack(frames)

    def _split(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The tensors' frames one by one (views along the batch axis), each checked against the shape."""
        for tensor in tensors:
            tensor = np.asarray(tensor)
            if self.shape is None:
                self.shape = tensor.shape
            if tensor.ndim != len(self.shape) or tensor.shape[1:] != self.shape[1:]:
                raise BadInputError(f"calibration: a tensor of shape {list(tensor.shape)} does not fit the "
                                    f"engine input's {list(self.shape)}")
            yield from tensor


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


def make_entropy_calibrator(batches: Iterable[np.ndarray], cache_path: Path) -> Any:
    """A ``tensorrt.IInt8EntropyCalibrator2`` fed from ``batches`` that keeps its cache in ``cache_path``.

    With a cache on disk TensorRT reads it and asks for no batch; without one, the batches must hold at
    least one frame (the first tensor sets the batch shape), or this says so before the build starts.
    CUDA is only touched when TensorRT asks for the first batch: the device buffer is allocated once then,
    in the primary context TensorRT uses, and freed when the feed is spent.
    """
    trt = import_tensorrt()
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise UsageError(f"--precision int8: TensorRT {trt.__version__} has no IInt8EntropyCalibrator2 "
                         f"(implicit INT8 calibration was removed in TensorRT 11); quantize the bundle with "
                         f"'edge quantize' to get a Q/DQ ONNX")
    feed = CalibrationFeed(batches)
    cache_path = Path(cache_path)
    if read_calibration_cache(cache_path) is None and not feed.has_batch():
        raise BadInputError("--calib: the calibration sources gave no frames, and there is no calibration cache")

    class EntropyCalibrator(base):
        """Entropy calibration (TensorRT's recommended algorithm for CNNs) over the footage's frames."""

        def __init__(self) -> None:
            base.__init__(self)  # pybind11 trampoline: the base must be initialised explicitly
            self.feed = feed
            self.cache_path = cache_path
            self._context: Any = None
            self._device: Any = None

        def get_batch_size(self) -> int:
            """Informational for explicit-batch (ONNX) networks, which calibrate at the calibration profile's
            shape; deprecated in TensorRT 10."""
            return feed.batch_size if feed.shape is not None else 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            """One pointer: the network has one input (compile.engine refuses any other)."""
            batch = feed.next_batch()
            if batch is None:
                LOG.info("calibration: %d batch(es), %d frame(s) fed, %d left over", feed.batches, feed.frames,
                         feed.dropped)
                self._release()
                return None
            if self._device is None:
                self._context = CudaContext()
                self._device = self._context.cuda.mem_alloc(batch.nbytes)
            self._context.cuda.memcpy_htod(self._device, batch)
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return read_calibration_cache(self.cache_path)

        def write_calibration_cache(self, cache: Any) -> None:
            write_calibration_cache(self.cache_path, cache)

        def _release(self) -> None:
            if self._device is not None:
                self._device.free()
                self._device = None
            if self._context is not None:
                self._context.close()
                self._context = None

    return EntropyCalibrator()

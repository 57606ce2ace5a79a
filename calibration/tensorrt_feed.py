"""The frames TensorRT's own INT8 calibrator reads, from the user's footage (``edge build-engine --calib``).

The calibrator itself runs on the device and lives in the runtime (:mod:`edge.backends.trt_calibrator`); it
reads any iterable of preprocessed input batches of the engine input's calibration shape. This module makes
that reader from footage: :func:`calibration_feed` samples frames with the shared sampler
(:func:`calibration.frames.sample_frames`, as ``edge quantize`` does), preprocesses them exactly as at run
time, and :class:`CalibrationFeed` regroups them into batches. Pure NumPy and OpenCV: it runs anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import numpy as np

from calibration.frames import sample_frames
from edge.bundle import Bundle
from edge.errors import BadInputError
from edge.preprocess import Preprocessor

LOG = logging.getLogger(__name__)


class CalibrationFeed:
    """Regroups preprocessed input tensors (``N × …``, any ``N``) into batches of one fixed shape.

    ``shape`` is the engine input's calibration shape (for a dynamic input, the calibration profile's
    ``opt`` shape, which :mod:`edge.backends.builder` sets to the bundle's); by default the first tensor's shape.
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
            LOG.info("calibration: %d frame(s) left over after %d full batch(es)", self.dropped, self.batches)
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


def calibration_feed(bundle: Bundle, sources: Sequence[str], limit: int) -> CalibrationFeed:
    """The reader the engine builder's calibrator takes: up to ``limit`` frames of ``sources`` in batches of
    the bundle's input shape (the calibration shape the builder sets)."""
    return CalibrationFeed(calibration_batches(bundle, sources, limit), shape=bundle.input.shape)


def calibration_batches(bundle: Bundle, sources: Sequence[str], limit: int) -> Iterator[np.ndarray]:
    """Up to ``limit`` input tensors from the sources, preprocessed exactly as at run time. The frames are
    spread over the footage with near-duplicates dropped (:func:`calibration.frames.sample_frames`, the
    sampler ``edge quantize`` uses): a static camera's thousand identical frames would otherwise be the
    whole calibration."""
    preprocess = Preprocessor(bundle.input)
    for frame in sample_frames(list(sources), limit):
        batch = np.empty(bundle.input.shape, bundle.input.dtype)
        preprocess(frame.image, batch)
        yield batch

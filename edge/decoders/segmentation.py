"""Semantic segmentation: per-class score maps ``[1, C, h, w]`` → one class map at the frame's size.

``softmax``: exclusive classes (ESPNetv2 VOC, torchvision FCN / DeepLabV3 / LRASPP): the class id of
each pixel is the argmax over the class logits. ``sigmoid``: independent classes with a threshold
(``thresholds.score``; the skin/clothes/hair model): bit k of the map says whether class k covers the
pixel (at most 16 classes).

Back to the frame, through whatever resize the input spec used: the Transform says where the frame sits
in the model input (scaled, letterboxed, padded), so every frame pixel centre has a place in the output;
letterbox pad never reaches the frame. Only the output window the frame covers is classified.
``decoder_args.upsample``:

- ``nearest``: classify at the output's resolution, then give each frame pixel the class of the output
  pixel its centre falls in (:func:`nearest_tables`: one output row per frame row, one output column per
  frame column). Exact when the output is at least as fine as the frame (nearest sampling commutes with
  argmax and thresholds), and cheap: two uint8 gathers. The GPU class map
  (:class:`edge.gpu.segmentation.GpuClassMap`) reads the same tables, so it gives the same pixels.
- ``bilinear``: resize the scores bilinearly (C planes), then classify at frame size: smooth edges when
  the output is much coarser than the frame (a stride-8 head), at C times the cost.
- ``auto`` (default): ``nearest`` unless the frame is more than twice as fine as the output in an axis.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.bundle.spec import InputSpec
from edge.decoders.base import Decoder, OutputArgs
from edge.geometry import Transform
from edge.results import Segmentation

COARSE = 2.0  # frame pixels per output pixel above which ``auto`` interpolates the scores
BAND_BYTES = 4 << 20  # scores of this many bytes of frame rows are interpolated at a time (cache-sized)


@dataclass(frozen=True)
class ScoreMapArgs(OutputArgs):
    """``background_class``: the class that is not drawn (nor made a panoptic segment), or null for none."""

    upsample: Literal["auto", "nearest", "bilinear"] = "auto"
    background_class: int | None = field(default=0, metadata={"minimum": 0})


@dataclass(frozen=True)
class MultiLabelArgs(ScoreMapArgs):
    background_class: int | None = field(default=None, metadata={"minimum": 0})


class _ScoreMapDecoder(Decoder, task="segmentation", args=ScoreMapArgs):
    multi_label = False

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.output = self.args.output
        self.num_classes = self.output_shape("[1, classes, height, width]", rank=4, static=(1,))[1]
        if bundle.labels and len(bundle.labels) != self.num_classes:
            raise self.bad(f"{len(bundle.labels)} labels for an output of {self.num_classes} classes")
        self.upsample = self.args.upsample
        self.background = self.args.background_class
        self._band = np.empty((0, 0, 0), np.float32)
        self._cached_key: tuple | None = None
        self._cached_tables: tuple[np.ndarray, np.ndarray] = (np.empty(0, np.int32),) * 2

    @abstractmethod
    def classify(self, scores: np.ndarray, axis: int) -> np.ndarray:
        """Class map from scores whose class axis is ``axis``."""

    def _takes_bilinear(self, window: Window) -> bool:
        return self.upsample == "bilinear" or (self.upsample == "auto" and window.coarseness > COARSE)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Segmentation:
        scores = outputs[self.output][0]
        window = Window.of(scores.shape[1:], self.bundle.input, transform)
        scores = scores[:, window.rows, window.cols]
        if self._takes_bilinear(window):
            class_map = self._bilinear(scores, window, transform.source_size)
        else:
            rows, cols = self._tables(window, transform)
            class_map = self.classify(scores, axis=0).take(rows, axis=0).take(cols, axis=1)
        return Segmentation(class_map, self.num_classes, self.multi_label, self.background)

    def _bilinear(self, scores: np.ndarray, window: Window, size: tuple[int, int]) -> np.ndarray:
        """The scores resized bilinearly to the frame and classified, a band of frame rows at a time into
        one float buffer kept between frames: the whole frame's planes would be C × 8 MB at 1080p (174 MB
        for 21 classes), allocated and written out to memory on every frame."""
        (width, height), classes = size, scores.shape[0]
        planes = np.ascontiguousarray(scores.transpose(1, 2, 0))
        rows = min(height, max(1, BAND_BYTES // (width * classes * planes.itemsize)))
        if self._band.shape != (rows, width, classes) or self._band.dtype != planes.dtype:
            self._band = np.empty((rows, width, classes), planes.dtype)
        class_map = None
        matrix = window.matrix
        for top in range(0, height, rows):
            band = self._band[:min(rows, height - top)]
            shifted = matrix + [[0, 0, matrix[0, 1] * top], [0, 0, matrix[1, 1] * top]]  # frame row top → 0
            cv2.warpAffine(planes, shifted, (width, len(band)), dst=band, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
            classes_of_band = self.classify(band, axis=2)
            if class_map is None:
                class_map = np.empty((height, width), classes_of_band.dtype)
            class_map[top:top + len(band)] = classes_of_band
        return class_map

    def _tables(self, window: Window, transform: Transform) -> tuple[np.ndarray, np.ndarray]:
        """:func:`nearest_tables` relative to the window, kept while the frame size and placement stay."""
        key = (transform, window.rows, window.cols)
        if self._cached_key != key:
            rows, cols = nearest_tables(window, transform)
            self._cached_tables = rows - window.rows.start, cols - window.cols.start
            self._cached_key = key
        return self._cached_tables


@dataclass(frozen=True)
class Window:
    """Where the frame lies in a model output: the output rows/cols it covers and, per axis, output pixels
    per frame pixel (``scale``) and the frame's left/top edge in window pixels (``shift``)."""

    rows: slice
    cols: slice
    scale: tuple[float, float]
    shift: tuple[float, float]

    @classmethod
    def of(cls, out_shape: tuple[int, int], spec: InputSpec, t: Transform) -> Window:
        fy, fx = out_shape[0] / spec.height, out_shape[1] / spec.width
        ax, ay = t.scale_x * fx, t.scale_y * fy
        left, top = t.offset_x * fx, t.offset_y * fy
        x0, y0 = max(0, math.floor(left)), max(0, math.floor(top))
        x1 = min(out_shape[1], math.ceil(left + ax * t.source_size[0]))
        y1 = min(out_shape[0], math.ceil(top + ay * t.source_size[1]))
        return cls(slice(y0, y1), slice(x0, x1), (ax, ay), (left - x0, top - y0))

    @property
    def coarseness(self) -> float:
        """Frame pixels one output pixel spans, in the coarser axis."""
        return max(1 / self.scale[0], 1 / self.scale[1])

    @property
    def matrix(self) -> np.ndarray:
        """Frame pixel → window pixel as an affine for ``cv2.warpAffine``, pixel centres mapped to centres."""
        (ax, ay), (sx, sy) = self.scale, self.shift
        return np.array([[ax, 0.0, 0.5 * ax + sx - 0.5], [0.0, ay, 0.5 * ay + sy - 0.5]])


def nearest_tables(window: Window, transform: Transform) -> tuple[np.ndarray, np.ndarray]:
    """int32 output row of every frame row and output column of every frame column: the output pixel that
    holds the frame pixel's centre, kept inside the window. The one definition of nearest upsampling, for
    the CPU decoder and the GPU kernel alike."""
    def axis(count: int, scale: float, shift: float, window_axis: slice) -> np.ndarray:
        inside = np.floor((np.arange(count) + 0.5) * scale + shift)
        return np.clip(inside, 0, window_axis.stop - window_axis.start - 1).astype(np.int32) + window_axis.start

    (width, height), (ax, ay), (sx, sy) = transform.source_size, window.scale, window.shift
    return axis(height, ay, sy, window.rows), axis(width, ax, sx, window.cols)


class SoftmaxSegmentation(_ScoreMapDecoder, name="softmax", accepts=("instances",)):
    """Exclusive classes: argmax of the logits (softmax is monotonic, so it is never computed). With
    ``needs.instances`` its map becomes the stuff of a panoptic map (see :mod:`edge.panoptic`)."""

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.dtype = np.uint8 if self.num_classes <= 256 else np.uint16

    def classify(self, scores: np.ndarray, axis: int) -> np.ndarray:
        return scores.argmax(axis=axis).astype(self.dtype)

    def class_map_output(self, transform: Transform) -> str | None:
        """The logits, where this frame takes the ``nearest`` path (an argmax and a gather, which a GPU
        backend does before the logits leave the device) and the output's size is known."""
        height, width = self.outputs[self.output].shape[2:]
        if height is None or width is None:
            return None
        return None if self._takes_bilinear(Window.of((height, width), self.bundle.input, transform)) else self.output

    def from_class_map(self, class_map: np.ndarray) -> Segmentation:
        return Segmentation(class_map, self.num_classes, self.multi_label, self.background)


class SigmoidSegmentation(_ScoreMapDecoder, name="sigmoid", args=MultiLabelArgs):
    """Independent classes: bit k set where class k's probability reaches ``thresholds.score``."""

    multi_label = True

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        if self.num_classes > 16:
            raise self.bad(f"{self.num_classes} classes; the sigmoid decoder packs at most 16 into a mask")
        self.threshold = self.thresholds.score

    def classify(self, scores: np.ndarray, axis: int) -> np.ndarray:
        packed = np.packbits(scores >= self.threshold, axis=axis, bitorder="little")
        if self.num_classes <= 8:
            return np.squeeze(packed, axis=axis)
        low, high = np.moveaxis(packed, axis, 0)
        return low.astype(np.uint16) | (high.astype(np.uint16) << 8)

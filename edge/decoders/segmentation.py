"""Semantic segmentation: per-class score maps ``[1, C, h, w]`` → one class map at the frame's size.

``softmax``: exclusive classes (ESPNetv2 VOC, torchvision FCN / DeepLabV3 / LRASPP): the class id of
each pixel is the argmax over the class logits. ``sigmoid``: independent classes with a threshold
(``thresholds.score``; the skin/clothes/hair model): bit k of the map says whether class k covers the
pixel (at most 16 classes).

Back to the frame, through whatever resize the input spec used: the Transform says where the frame sits
in the model input (scaled, letterboxed, padded), so one ``cv2.warpAffine`` with the inverse mapping
reads every frame pixel from the output; letterbox pad never reaches the frame. Only the output window
the frame covers is classified. ``decoder_args.upsample``:

- ``nearest``: classify at the output's resolution, then resize the small class map with nearest
  neighbour. Exact when the output is at least as fine as the frame (nearest sampling commutes with
  argmax and thresholds), and cheap: one uint8 warp.
- ``bilinear``: resize the scores bilinearly (C planes), then classify at frame size: smooth edges when
  the output is much coarser than the frame (a stride-8 head), at C times the cost.
- ``auto`` (default): ``nearest`` unless the frame is more than twice as fine as the output in an axis.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping

import cv2
import numpy as np

from edge.decoders.base import Decoder, register
from edge.preprocess import Transform
from edge.results import Segmentation

UPSAMPLING = ("auto", "nearest", "bilinear")
COARSE = 2.0  # frame pixels per output pixel above which ``auto`` interpolates the scores


class _ScoreMapDecoder(Decoder):
    task = "segmentation"
    multi_label = False

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.output = self.output_named("output", next(iter(self.outputs)))
        shape = self.outputs[self.output].shape
        if len(shape) != 4 or not isinstance(shape[1], int):
            raise self.bad(f"expected an output [1, classes, height, width], got {list(shape)}")
        self.num_classes = shape[1]
        if bundle.labels and len(bundle.labels) != self.num_classes:
            raise self.bad(f"{len(bundle.labels)} labels for an output of {self.num_classes} classes")
        self.upsample = self.arg("upsample", "auto")
        if self.upsample not in UPSAMPLING:
            raise self.bad(f"decoder_args.upsample must be one of {', '.join(UPSAMPLING)}, not '{self.upsample}'")
        self.background = self.arg("background_class", 0 if not self.multi_label else None)

    @abstractmethod
    def classify(self, scores: np.ndarray, axis: int) -> np.ndarray:
        """Class map from scores whose class axis is ``axis``."""

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Segmentation:
        scores = outputs[self.output][0]
        (rows, cols), matrix, coarseness = self._window(scores.shape[1:], transform)
        scores = scores[:, rows, cols]
        size = transform.source_size
        bilinear = self.upsample == "bilinear" or (self.upsample == "auto" and coarseness > COARSE)
        if bilinear:
            planes = np.ascontiguousarray(scores.transpose(1, 2, 0))
            frame = _warp(planes, matrix, size, cv2.INTER_LINEAR)
            class_map = self.classify(frame.reshape(size[1], size[0], -1), axis=2)
        else:
            class_map = _warp(self.classify(scores, axis=0), matrix, size, cv2.INTER_NEAREST)
        return Segmentation(class_map, self.num_classes, self.multi_label, self.background)

    def _window(self, out_shape: tuple[int, int], t: Transform):
        """The output rows/cols the frame covers, the frame-pixel → window-pixel affine, and how many frame
        pixels one output pixel spans (the coarser axis)."""
        fy, fx = out_shape[0] / self.bundle.input.height, out_shape[1] / self.bundle.input.width
        ax, ay = t.scale_x * fx, t.scale_y * fy  # output pixels per frame pixel
        left, top = t.offset_x * fx, t.offset_y * fy
        x0, y0 = max(0, math.floor(left)), max(0, math.floor(top))
        x1 = min(out_shape[1], math.ceil(left + ax * t.source_size[0]))
        y1 = min(out_shape[0], math.ceil(top + ay * t.source_size[1]))
        # Pixel centres: window index = (frame index + 0.5) * a + offset - 0.5 - window origin.
        matrix = np.array([[ax, 0.0, 0.5 * ax + left - 0.5 - x0], [0.0, ay, 0.5 * ay + top - 0.5 - y0]])
        return (slice(y0, y1), slice(x0, x1)), matrix, max(1 / ax, 1 / ay)


def _warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """Frame-sized image read from ``image`` through the frame → image mapping ``matrix``."""
    return cv2.warpAffine(image, matrix, size, flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


@register
class SoftmaxSegmentation(_ScoreMapDecoder):
    """Exclusive classes: argmax of the logits (softmax is monotonic, so it is never computed). With
    ``needs.instances`` its map becomes the stuff of a panoptic map (see :mod:`edge.panoptic`)."""

    name = "softmax"
    accepts = ("instances",)

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.dtype = np.uint8 if self.num_classes <= 256 else np.uint16

    def classify(self, scores: np.ndarray, axis: int) -> np.ndarray:
        return scores.argmax(axis=axis).astype(self.dtype)


@register
class SigmoidSegmentation(_ScoreMapDecoder):
    """Independent classes: bit k set where class k's probability reaches ``thresholds.score``."""

    name = "sigmoid"
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

"""SSD / SSDlite raw heads as torchvision defines them, decoded exactly as ``SSD.postprocess_detections``.

Outputs ``bbox_regression`` [1, N, 4] and ``cls_logits`` [1, N, C] (class 0 = background); anchors
[N, 4] (x1, y1, x2, y2 in model-input pixels) come from the bundle's ``anchors`` file, which compile
writes from the model's own ``DefaultBoxGenerator``. Per frame: softmax, per-class score threshold
and top-k, box decoding (``BoxCoder`` with weights 10, 10, 5, 5) for candidates only, clip to the
input, class-aware NMS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Decoder, register
from edge.decoders.nms import nms
from edge.preprocess import Transform
from edge.results import Detections


@register
class SsdDecoder(Decoder):
    name = "ssd"
    task = "detection"

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.regression = self.output_named("regression_output", "bbox_regression")
        self.logits = self.output_named("logits_output", "cls_logits")
        try:
            anchors = np.load(bundle.file("anchors")).astype(np.float32)
        except (OSError, ValueError) as e:
            raise self.bad(f"cannot read the anchors file ({e})") from None
        points = self.outputs[self.logits].shape[1]
        if anchors.ndim != 2 or anchors.shape[1] != 4 or anchors.shape[0] != points:
            raise self.bad(f"anchors {list(anchors.shape)} do not match the model's {points} predictions")
        sizes = anchors[:, 2:] - anchors[:, :2]
        self.anchor_sizes = sizes
        self.anchor_centres = anchors[:, :2] + 0.5 * sizes
        self.weights = np.asarray(self.arg("box_coder_weights", [10.0, 10.0, 5.0, 5.0]), np.float32)
        self.topk = int(self.arg("topk_candidates", 300))
        self.background = int(self.arg("background_class", 0))
        self.size_clip = math.log(1000.0 / 16)  # torchvision's bbox_xform_clip
        self.canvas = np.array([bundle.input.width, bundle.input.height] * 2, np.float32)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        logits = outputs[self.logits][0]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = exp / exp.sum(axis=1, keepdims=True)
        probs[:, self.background] = -1.0  # never a candidate
        anchor_ids, class_ids = np.nonzero(probs > self.thresholds.score)
        scores = probs[anchor_ids, class_ids]
        picked = self._topk_per_class(scores, class_ids)
        anchor_ids, class_ids, scores = anchor_ids[picked], class_ids[picked], scores[picked]
        if len(scores) == 0:
            return Detections.empty()
        boxes = self._decode(outputs[self.regression][0][anchor_ids], anchor_ids)
        np.clip(boxes, 0, self.canvas, out=boxes)
        keep = nms(boxes, scores, self.thresholds.iou, class_ids, self.thresholds.max_detections)
        return Detections(transform.boxes_to_source(boxes[keep]), scores[keep], class_ids[keep])

    def _topk_per_class(self, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Indices of the ``topk`` best candidates of every class, without a loop over classes."""
        counts = np.bincount(class_ids)
        if len(counts) == 0 or counts.max() <= self.topk:
            return np.arange(len(scores))
        order = np.lexsort((-scores, class_ids))  # by class, best first within each class
        first_of_class = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(len(order)) - first_of_class[class_ids[order]]
        return order[rank < self.topk]

    def _decode(self, deltas: np.ndarray, anchor_ids: np.ndarray) -> np.ndarray:
        sizes = self.anchor_sizes[anchor_ids]
        centres = deltas[:, :2] / self.weights[:2] * sizes + self.anchor_centres[anchor_ids]
        half = 0.5 * np.exp(np.minimum(deltas[:, 2:] / self.weights[2:], self.size_clip)) * sizes
        return np.concatenate([centres - half, centres + half], axis=1)

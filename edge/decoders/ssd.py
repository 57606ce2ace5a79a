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
from dataclasses import dataclass, field

import numpy as np

from edge.decoders.base import Decoder
from edge.decoders.nms import nms
from edge.geometry import Transform, boxes_from_centres
from edge.results import Detections


@dataclass(frozen=True)
class SsdArgs:
    """torchvision's ``BoxCoder`` weights, ``topk_candidates`` per class and background class."""

    regression_output: str = "bbox_regression"
    logits_output: str = "cls_logits"
    box_coder_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    topk_candidates: int = field(default=300, metadata={"minimum": 1})
    background_class: int = field(default=0, metadata={"minimum": 0})


class SsdDecoder(Decoder, key="ssd", task="detection", roles=("model", "anchors"), args=SsdArgs):
    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        logits = self.outputs[self.args.logits_output].shape
        anchors = self.load_anchors(logits[1])
        if isinstance(logits[2], int):
            self.check_labels(logits[2])  # class 0 (background) has its label too
        sizes = anchors[:, 2:] - anchors[:, :2]
        self.anchor_sizes = sizes
        self.anchor_centres = anchors[:, :2] + 0.5 * sizes
        self.weights = np.asarray(self.args.box_coder_weights, np.float32)
        self.size_clip = math.log(1000.0 / 16)  # torchvision's bbox_xform_clip
        self.canvas = np.array([bundle.input.width, bundle.input.height] * 2, np.float32)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        logits = outputs[self.args.logits_output][0]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = exp / exp.sum(axis=1, keepdims=True)
        probs[:, self.args.background_class] = -1.0  # never a candidate
        anchor_ids, class_ids = np.nonzero(probs > self.thresholds.score)
        scores = probs[anchor_ids, class_ids]
        picked = self._topk_per_class(scores, class_ids)
        anchor_ids, class_ids, scores = anchor_ids[picked], class_ids[picked], scores[picked]
        if len(scores) == 0:
            return Detections.empty()
        boxes = self._decode(outputs[self.args.regression_output][0][anchor_ids], anchor_ids)
        np.clip(boxes, 0, self.canvas, out=boxes)
        keep = nms(boxes, scores, self.thresholds.iou, class_ids, self.thresholds.max_detections)
        return Detections(transform.boxes_to_source(boxes[keep]), scores[keep], class_ids[keep])

    def _topk_per_class(self, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Indices of the ``topk`` best candidates of every class, without a loop over classes."""
        counts = np.bincount(class_ids)
        if len(counts) == 0 or counts.max() <= self.args.topk_candidates:
            return np.arange(len(scores))
        order = np.lexsort((-scores, class_ids))  # by class, best first within each class
        first_of_class = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(len(order)) - first_of_class[class_ids[order]]
        return order[rank < self.args.topk_candidates]

    def _decode(self, deltas: np.ndarray, anchor_ids: np.ndarray) -> np.ndarray:
        sizes = self.anchor_sizes[anchor_ids]
        centres = deltas[:, :2] / self.weights[:2] * sizes + self.anchor_centres[anchor_ids]
        return boxes_from_centres(centres, 0.5 * np.exp(np.minimum(deltas[:, 2:] / self.weights[2:], self.size_clip))
                                  * sizes)

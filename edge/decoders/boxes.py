"""Models that already decode their boxes: ``boxes`` [1, N, 4] and ``scores`` [1, N, C] (or [1, N]).

The UltraFace export is the usual case: corner-form boxes normalised to 0..1 and softmax scores whose
column 0 is background. ``decoder_args``: ``boxes_output``/``scores_output`` (names), ``normalized``
(default true), ``box_format`` (``xyxy`` or ``cxcywh``), ``background_class`` (a score column that is
never a detection, or null). Class ids are score-column indices, so ``labels`` lists every column.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Decoder, register
from edge.decoders.nms import nms
from edge.preprocess import Transform
from edge.results import Detections


@register
class BoxesDecoder(Decoder):
    name = "boxes"
    task = "detection"

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.boxes = self.output_named("boxes_output", "boxes")
        self.scores = self.output_named("scores_output", "scores")
        self.box_format = self.arg("box_format", "xyxy")
        if self.box_format not in ("xyxy", "cxcywh"):
            raise self.bad(f"decoder_args.box_format must be xyxy or cxcywh, not '{self.box_format}'")
        scale = [bundle.input.width, bundle.input.height] * 2 if self.arg("normalized", True) else [1.0] * 4
        self.scale = np.asarray(scale, np.float32)
        self.background = self.arg("background_class", None)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        scores = outputs[self.scores][0]
        if scores.ndim == 1:
            scores = scores[:, None]
        if self.background is not None:
            scores = scores.copy()
            scores[:, self.background] = -1.0
        class_ids = scores.argmax(axis=1)
        best = np.take_along_axis(scores, class_ids[:, None], axis=1)[:, 0]
        candidates = np.flatnonzero(best >= self.thresholds.score)
        if len(candidates) == 0:
            return Detections.empty()
        boxes = outputs[self.boxes][0][candidates] * self.scale
        if self.box_format == "cxcywh":
            boxes = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
        best, class_ids = best[candidates], class_ids[candidates]
        keep = nms(boxes, best, self.thresholds.iou, class_ids, self.thresholds.max_detections)
        return Detections(transform.boxes_to_source(boxes[keep]), best[keep], class_ids[keep])

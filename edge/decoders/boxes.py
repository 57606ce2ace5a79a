"""Models that already decode their boxes: ``boxes`` [1, N, 4] and ``scores`` [1, N, C] (or [1, N]).

The UltraFace export is the usual case: corner-form boxes normalised to 0..1 and softmax scores whose
column 0 is background. ``decoder_args``: ``boxes_output``/``scores_output`` (names), ``normalized``
(default true), ``box_format`` (``xyxy`` or ``cxcywh``), ``background_class`` (a score column that is
never a detection, or null). Class ids are score-column indices, so ``labels`` lists every column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge.decoders.base import Decoder
from edge.decoders.nms import nms
from edge.geometry import Transform, boxes_from_centres
from edge.results import Detections


@dataclass(frozen=True)
class BoxesArgs:
    boxes_output: str = "boxes"
    scores_output: str = "scores"
    normalized: bool = True
    box_format: Literal["xyxy", "cxcywh"] = "xyxy"
    background_class: int | None = field(default=None, metadata={"minimum": 0})


class BoxesDecoder(Decoder, key="boxes", task="detection", args=BoxesArgs):
    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        scale = [bundle.input.width, bundle.input.height] * 2 if self.args.normalized else [1.0] * 4
        self.scale = np.asarray(scale, np.float32)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        scores = outputs[self.args.scores_output][0]
        if scores.ndim == 1:
            scores = scores[:, None]
        if self.args.background_class is not None:
            scores = scores.copy()
            scores[:, self.args.background_class] = -1.0
        class_ids = scores.argmax(axis=1)
        best = np.take_along_axis(scores, class_ids[:, None], axis=1)[:, 0]
        candidates = np.flatnonzero(best >= self.thresholds.score)
        if len(candidates) == 0:
            return Detections.empty()
        boxes = outputs[self.args.boxes_output][0][candidates] * self.scale
        if self.args.box_format == "cxcywh":
            boxes = boxes_from_centres(boxes[:, :2], boxes[:, 2:] / 2)
        best, class_ids = best[candidates], class_ids[candidates]
        keep = nms(boxes, best, self.thresholds.iou, class_ids, self.thresholds.max_detections)
        return Detections(transform.boxes_to_source(boxes[keep]), best[keep], class_ids[keep])

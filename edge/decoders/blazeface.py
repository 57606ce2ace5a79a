"""MediaPipe BlazeFace: ``regressors`` [1, N, 4 + 2K] and ``scores`` [1, N, 1] (logits) over N fixed anchors.

Anchors (cx, cy, w, h, normalised to the input) come from the bundle's ``anchors`` file (``.npy``, [N, 4]).
Per anchor: centre ``r[0:2] / input size * anchor size + anchor centre``, size ``r[2:4] / input size *
anchor size``, and K landmarks (eyes, nose, mouth, ears for the front model) decoded like the centre.
Score = sigmoid of the logit (clipped as MediaPipe does), then NMS. ``decoder_args.scale`` overrides
the regressor scale: one number or (x, y) (default: the input width and height, 128 for the front model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edge.decoders.base import Decoder
from edge.decoders.nms import nms
from edge.geometry import Transform, boxes_from_centres
from edge.results import Detections

SCORE_CLIP = 100.0  # MediaPipe's score_clipping_thresh


@dataclass(frozen=True)
class BlazeFaceArgs:
    regressors_output: str = "regressors"
    scores_output: str = "scores"
    scale: float | tuple[float, float] | None = None  # None: the input's width and height


class BlazeFaceDecoder(Decoder, key="blazeface", task="detection", roles=("model", "anchors"), args=BlazeFaceArgs):
    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        points, values = self.outputs[self.args.regressors_output].shape[1:]
        if (values - 4) % 2:
            raise self.bad(f"expected regressors [1, N, 4 + 2 × landmarks], got [1, {points}, {values}]")
        anchors = self.load_anchors(points)
        self.landmarks = (values - 4) // 2
        size = np.array([bundle.input.width, bundle.input.height], np.float32)
        scale = size if self.args.scale is None else np.asarray(self.args.scale, np.float32)
        # Everything is computed in model-input pixels: normalised anchor values times the input size.
        self.anchor_centres = anchors[:, :2] * size
        self.anchor_sizes = anchors[:, 2:] * size
        self.unit = self.anchor_sizes / scale  # regressor unit → model pixels, per anchor

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        logits = np.clip(outputs[self.args.scores_output][0, :, 0].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
        scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        candidates = np.flatnonzero(scores >= self.thresholds.score)
        if len(candidates) == 0:
            return Detections.empty()
        raw = outputs[self.args.regressors_output][0][candidates]
        unit, centres = self.unit[candidates], self.anchor_centres[candidates]
        centre = raw[:, 0:2] * unit + centres
        boxes = boxes_from_centres(centre, 0.5 * raw[:, 2:4] * unit)
        points = raw[:, 4:].reshape(-1, self.landmarks, 2) * unit[:, None] + centres[:, None]
        scores = scores[candidates]
        keep = nms(boxes, scores, self.thresholds.iou, None, self.thresholds.max_detections)
        keypoints = np.concatenate([points[keep], np.repeat(scores[keep, None, None], self.landmarks, 1)], axis=2)
        return Detections(transform.boxes_to_source(boxes[keep]), scores[keep],
                          np.zeros(len(keep), np.int64), transform.points_to_source(keypoints))

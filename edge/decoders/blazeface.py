"""MediaPipe BlazeFace: ``regressors`` [1, N, 4 + 2K] and ``scores`` [1, N, 1] (logits) over N fixed anchors.

Anchors (cx, cy, w, h, normalised to the input) come from the bundle's ``anchors`` file (``.npy``, [N, 4]).
Per anchor: centre ``r[0:2] / input size * anchor size + anchor centre``, size ``r[2:4] / input size *
anchor size``, and K landmarks (eyes, nose, mouth, ears for the front model) decoded like the centre.
Score = sigmoid of the logit (clipped as MediaPipe does), then NMS. ``decoder_args.scale`` overrides
the regressor scale (default: the input width and height, 128 for the front model).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Decoder, register
from edge.decoders.nms import nms
from edge.preprocess import Transform
from edge.results import Detections

SCORE_CLIP = 100.0  # MediaPipe's score_clipping_thresh


@register
class BlazeFaceDecoder(Decoder):
    name = "blazeface"
    task = "detection"

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.regressors = self.output_named("regressors_output", "regressors")
        self.scores = self.output_named("scores_output", "scores")
        try:
            anchors = np.load(bundle.file("anchors")).astype(np.float32)
        except (OSError, ValueError) as e:
            raise self.bad(f"cannot read the anchors file ({e})") from None
        points, values = self.outputs[self.regressors].shape[1:]
        if anchors.shape != (points, 4) or (values - 4) % 2:
            raise self.bad(f"anchors {list(anchors.shape)} do not fit regressors [1, {points}, {values}]")
        self.landmarks = (values - 4) // 2
        size = np.array([bundle.input.width, bundle.input.height], np.float32)
        scale = np.asarray(self.arg("scale", size.tolist()), np.float32)
        # Everything is computed in model-input pixels: normalised anchor values times the input size.
        self.anchor_centres = anchors[:, :2] * size
        self.anchor_sizes = anchors[:, 2:] * size
        self.unit = self.anchor_sizes / scale  # regressor unit → model pixels, per anchor

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        logits = np.clip(outputs[self.scores][0, :, 0].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
        scores = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        candidates = np.flatnonzero(scores >= self.thresholds.score)
        if len(candidates) == 0:
            return Detections.empty()
        raw = outputs[self.regressors][0][candidates]
        unit, centres = self.unit[candidates], self.anchor_centres[candidates]
        centre = raw[:, 0:2] * unit + centres
        half = 0.5 * raw[:, 2:4] * unit
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:].reshape(-1, self.landmarks, 2) * unit[:, None] + centres[:, None]
        scores = scores[candidates]
        keep = nms(boxes, scores, self.thresholds.iou, None, self.thresholds.max_detections)
        keypoints = np.concatenate([points[keep], np.repeat(scores[keep, None, None], self.landmarks, 1)], axis=2)
        return Detections(transform.boxes_to_source(boxes[keep]), scores[keep],
                          np.zeros(len(keep), np.int64), transform.points_to_source(keypoints))

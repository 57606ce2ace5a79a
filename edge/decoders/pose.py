"""Single-pose keypoint models: MoveNet's ``[1, 1, K, 3]`` = (y, x, score) normalised to the model input.

Run on a whole frame it gives one pose without a box; given a person detector (``needs.detector``) the
model runner feeds it one crop per person and the poses come back in frame pixels through each crop's
Transform, with the person's box.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Decoder, register
from edge.preprocess import Transform
from edge.results import Poses


@register
class MoveNetDecoder(Decoder):
    name = "movenet"
    task = "pose"
    accepts = ("detector",)

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.output = self.output_named("output", next(iter(self.outputs)))
        shape = self.outputs[self.output].shape
        if len(shape) != 4 or shape[-1] != 3 or not isinstance(shape[2], int):
            raise self.bad(f"expected an output [1, 1, keypoints, 3] of (y, x, score), got {list(shape)}")
        # (y, x) normalised → (x, y) in model-input pixels.
        self.scale = np.array([bundle.input.width, bundle.input.height], np.float32)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Poses:
        raw = outputs[self.output][0, 0]
        keypoints = np.empty(raw.shape, np.float32)
        keypoints[:, :2] = raw[:, 1::-1] * self.scale
        keypoints[:, 2] = raw[:, 2]
        transform.points_to_source(keypoints)
        score = float(raw[:, 2].mean())  # MoveNet has no person score; the mean keypoint score stands for it
        if score < self.thresholds.score:
            return Poses.empty(len(raw), with_boxes=False)
        return Poses(keypoints[None], np.array([score], np.float32))

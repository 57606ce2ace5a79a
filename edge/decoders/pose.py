"""Single-pose keypoint models: MoveNet's ``[1, 1, K, 3]`` = (y, x, score) normalised to the model input.

Run on a whole frame it gives one pose without a box; given a person detector (``needs.detector``) the
model runner feeds it one crop per person and the poses come back in frame pixels through each crop's
Transform, with the person's box.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Decoder, OutputArgs
from edge.geometry import Transform
from edge.results import Poses


class MoveNetDecoder(Decoder, key="movenet", task="pose", accepts=("detector",), args=OutputArgs):
    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        self.output_shape("[1, 1, keypoints, 3] of (y, x, score)", rank=4, static=(2,), fits=lambda s: s[3] == 3)
        # (y, x) normalised → (x, y) in model-input pixels.
        self.scale = np.array([bundle.input.width, bundle.input.height], np.float32)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Poses:
        raw = outputs[self.args.output][0, 0]
        keypoints = np.empty(raw.shape, np.float32)
        keypoints[:, :2] = raw[:, 1::-1] * self.scale
        keypoints[:, 2] = raw[:, 2]
        transform.points_to_source(keypoints)
        score = float(raw[:, 2].mean())  # MoveNet has no person score; the mean keypoint score stands for it
        if score < self.thresholds.score:
            return Poses.empty(len(raw), with_boxes=False)
        return Poses(keypoints[None], np.array([score], np.float32))

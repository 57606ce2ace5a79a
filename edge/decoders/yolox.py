"""YOLOX family: anchor-free grid outputs ``[1, N, 5 + C]`` (cx, cy, w, h raw; objectness; C class scores).

Strides and class count come from the output shape, so any YOLOX export works (nano to x, 416 or 640,
P5 or P6 heads, custom class counts) as long as it was exported without in-graph decoding, which is
YOLOX's own export default (``decode_in_inference=False``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edge.decoders.base import Decoder, OutputArgs
from edge.decoders.nms import nms
from edge.geometry import Transform, boxes_from_centres
from edge.results import Detections

_STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))


def grid_for(width: int, height: int, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell offsets [N,2] and strides [N,1] for the stride set whose grids add up to ``points``."""
    for strides in _STRIDE_SETS:
        sizes = [(height // s, width // s) for s in strides]
        if sum(h * w for h, w in sizes) == points:
            cells, steps = [], []
            for (h, w), s in zip(sizes, strides):
                ys, xs = np.mgrid[0:h, 0:w]
                cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
                steps.append(np.full((h * w, 1), s))
            return np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32)
    raise ValueError(f"{points} points do not match strides {_STRIDE_SETS} on a {width}x{height} input")


class YoloxDecoder(Decoder, key="yolox", task="detection", args=OutputArgs):
    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        shape = self.output_shape("[1, N, 5 + classes]", rank=3, static=(1, 2), fits=lambda s: s[2] >= 6)
        self.check_labels(shape[2] - 5)
        try:
            self.grid, self.strides = grid_for(bundle.input.width, bundle.input.height, shape[1])
        except ValueError as e:
            raise self.bad(str(e)) from None

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        raw = outputs[self.args.output][0]
        class_ids = raw[:, 5:].argmax(axis=1)
        scores = raw[:, 4] * np.take_along_axis(raw[:, 5:], class_ids[:, None], axis=1)[:, 0]
        candidates = np.flatnonzero(scores >= self.thresholds.score)
        if len(candidates) == 0:
            return Detections.empty()
        pred = raw[candidates, :4]
        centres = (pred[:, :2] + self.grid[candidates]) * self.strides[candidates]
        boxes = boxes_from_centres(centres, np.exp(pred[:, 2:4]) * self.strides[candidates] * 0.5)
        scores, class_ids = scores[candidates], class_ids[candidates]
        keep = nms(boxes, scores, self.thresholds.iou, class_ids, self.thresholds.max_detections)
        return Detections(transform.boxes_to_source(boxes[keep]), scores[keep], class_ids[keep])

"""Where pixels go: the mapping between frame pixels and model-input pixels, and box arithmetic.

Boxes are ``[N, 4]`` x1, y1, x2, y2 throughout; decoders that get centres and sizes from a model turn them
into corners with :func:`boxes_from_centres`. NMS and IoU live in :mod:`edge.decoders.nms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Transform:
    """Source-frame pixels → model-input pixels: ``model = source * scale + offset`` per axis.

    ``source_size`` is (width, height) of the frame, used to clip mapped-back boxes.
    """

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    source_size: tuple[int, int]

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Maps ``[..., 4]`` x1,y1,x2,y2 boxes in model pixels to source pixels, clipped to the frame, in place."""
        boxes[..., 0::2] -= self.offset_x
        boxes[..., 0::2] *= 1.0 / self.scale_x
        boxes[..., 1::2] -= self.offset_y
        boxes[..., 1::2] *= 1.0 / self.scale_y
        np.clip(boxes[..., 0::2], 0, self.source_size[0], out=boxes[..., 0::2])
        np.clip(boxes[..., 1::2], 0, self.source_size[1], out=boxes[..., 1::2])
        return boxes

    def points_to_source(self, points: np.ndarray) -> np.ndarray:
        """Maps ``[..., 2+]`` x,y(,…) points in model pixels to source pixels, in place (not clipped)."""
        points[..., 0] -= self.offset_x
        points[..., 0] *= 1.0 / self.scale_x
        points[..., 1] -= self.offset_y
        points[..., 1] *= 1.0 / self.scale_y
        return points

    def content_box(self) -> tuple[int, int, int, int]:
        """Where the frame lies in the model input: x, y, width, height in model pixels (the rest is padding)."""
        width, height = self.source_size
        return (int(self.offset_x), int(self.offset_y), round(width * self.scale_x), round(height * self.scale_y))


def boxes_from_centres(centres: np.ndarray, halves: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 4]`` from centres ``[N, 2]`` and half sizes ``[N, 2]`` (or ``[N, 1]`` for squares)."""
    return np.concatenate([centres - halves, centres + halves], axis=1)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """Centres ``[N, 2]`` of boxes ``[N, 4]``."""
    return (boxes[:, :2] + boxes[:, 2:]) * 0.5

"""Zones and lines in frame pixels, and the tests the analytics make on every tracked point of a frame at once.

Points are tested against a polygon with the crossing-number rule (even-odd), vectorised over points × edges
with NumPy: the edges' constants are computed once per frame size, so a frame's test is a few array
operations whatever the number of tracks (``cv2.pointPolygonTest`` takes one point per call). A path from one
observation of a track to the next crosses a line where its ends lie on opposite sides of the line and the
line's ends on opposite sides of the path.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.analytics.settings import Anchor, ShapeSettings


def to_pixels(shape: ShapeSettings, size: tuple[int, int]) -> np.ndarray:
    """The shape's points ``[K, 2]`` in pixels of a frame of ``size`` (width, height)."""
    points = np.asarray(shape.points, np.float64)
    return points * np.asarray(size, np.float64) if shape.normalised else points


def anchor_points(boxes: np.ndarray, anchor: Anchor) -> np.ndarray:
    """``[N, 2]`` anchor points of ``[N, 4]`` boxes: the bottom centre or the centre."""
    x = (boxes[:, 0] + boxes[:, 2]) * 0.5
    y = boxes[:, 3] if anchor is Anchor.BOTTOM else (boxes[:, 1] + boxes[:, 3]) * 0.5
    return np.stack([x, y], 1).astype(np.float64)


class Polygon:
    """A zone's polygon in frame pixels."""

    def __init__(self, points: np.ndarray):
        self.points = points
        start, end = points, np.roll(points, -1, axis=0)
        self._y0, self._y1 = start[:, 1], end[:, 1]
        self._x0 = start[:, 0]
        rise = end[:, 1] - start[:, 1]
        # x where each edge meets a horizontal line, as x0 + (y - y0) * slope; horizontal edges never straddle one.
        self._slope = np.divide(end[:, 0] - start[:, 0], rise, out=np.zeros_like(rise), where=rise != 0)
        self._mask: np.ndarray | None = None

    def contains(self, points: np.ndarray) -> np.ndarray:
        """``[N]`` bool: which of ``[N, 2]`` points lie inside (even-odd rule)."""
        y = points[:, 1:2]
        straddles = (self._y0 > y) != (self._y1 > y)
        crossings = straddles & (points[:, 0:1] < self._x0 + (y - self._y0) * self._slope)
        return np.count_nonzero(crossings, axis=1) % 2 == 1

    def mask(self, size: tuple[int, int]) -> np.ndarray:
        """The polygon as a uint8 mask (255 inside) of a frame of ``size``, drawn once."""
        if self._mask is None or self._mask.shape != (size[1], size[0]):
            self._mask = np.zeros((size[1], size[0]), np.uint8)
            cv2.fillPoly(self._mask, [np.round(self.points).astype(np.int32)], 255)
        return self._mask


class Segment:
    """A directed line A → B in frame pixels."""

    def __init__(self, points: np.ndarray):
        self.a, self.b = points[0], points[1]
        self._direction = self.b - self.a
        self._length = max(float(np.hypot(*self._direction)), 1e-9)

    def side(self, points: np.ndarray) -> np.ndarray:
        """``[N]`` signed distances in pixels of ``[N, 2]`` points from the line: positive on its right, as seen
        looking from A to B on the picture (y points down), negative on its left."""
        offsets = points - self.a
        return (self._direction[0] * offsets[:, 1] - self._direction[1] * offsets[:, 0]) / self._length

    def crossed_by(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """``[N]`` bool: whether each path ``starts[i] → ends[i]`` meets the segment A–B (ends on opposite sides
        of the line are the caller's test; this one checks that the path passes between A and B)."""
        path = ends - starts
        to_a, to_b = self.a - starts, self.b - starts
        side_a = path[:, 0] * to_a[:, 1] - path[:, 1] * to_a[:, 0]
        side_b = path[:, 0] * to_b[:, 1] - path[:, 1] * to_b[:, 0]
        return side_a * side_b <= 0

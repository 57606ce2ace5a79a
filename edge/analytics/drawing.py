"""Zones and lines on the annotated picture: each zone's outline with its name and how many are inside, each
line with an arrow toward the side its first direction crosses to and its counts per direction. Drawn in
the layer under the boxes (:mod:`edge.draw`), in a colour that turns red while something is inside a zone or
on the frame a line is crossed; one polylines call per colour, captions placed by the canvas."""

from __future__ import annotations

import numpy as np

from edge.analytics.stage import FrameAnalytics
from edge.canvas import Canvas
from edge.palette import Label

IDLE, ACTIVE = (0, 200, 255), (40, 40, 230)  # BGR: amber, red
ARROW = 0.04  # arrow length, a fraction of the frame's short side


def draw_analytics(canvas: Canvas, analytics: FrameAnalytics, _label: Label) -> None:
    thickness = canvas.style.line + 1
    short = min(canvas.image.shape[:2])
    for active in (False, True):
        shapes = [s for s in analytics.shapes if s.active is active]
        outlines = [np.concatenate([s.points, s.points[:1]]) if s.closed else s.points for s in shapes]
        outlines += [a for s in shapes if not s.closed for a in _arrow(s.points, ARROW * short)]
        color = ACTIVE if active else IDLE
        for outline in outlines:
            canvas.lines(outline[None].astype(np.int32), color, thickness)
        for shape in shapes:
            x, y = shape.points[np.argmin(shape.points[:, 1])].tolist()  # by its topmost point
            canvas.caption(shape.caption, x, y, color)


def _arrow(points: np.ndarray, length: float) -> list[np.ndarray]:
    """From the line's middle toward its right (seen from A to B): the shaft and the head's two strokes."""
    a, b = points.astype(np.float64)
    middle, along = (a + b) / 2, (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
    right = np.array([-along[1], along[0]])  # y points down: this is the right-hand side of A → B
    tip = middle + right * length
    head = length * 0.4
    return [np.round(np.stack([middle, tip])), np.round(np.stack([tip, tip - right * head + along * head])),
            np.round(np.stack([tip, tip - right * head - along * head]))]

"""A directed line over one bundle's tracked detections: crossings, by direction and class.

Each track's side of the line is remembered where its anchor was last clearly off the line (``MARGIN``
pixels or more): a crossing is a change of that side along a path that passes between the line's ends, so
a box jittering on the line counts once, and a track that goes round the end of the line counts nothing.
The side test and the path test run on every track of the frame at once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edge.analytics.settings import LineSettings
from edge.analytics.shapes import Segment, anchor_points, to_pixels
from edge.analytics.table import TrackTable, tracked
from edge.results import Detections, Label

MARGIN = 2.0  # pixels from the line within which a side is not trusted


class LineCounter:
    """One line on one detection bundle of one stream; ``wanted`` holds the class ids it counts (None: all)."""

    def __init__(self, line: LineSettings, bundle: str, label: Label, wanted: np.ndarray | None, forget_s: float):
        self.line, self.bundle, self.label, self.wanted, self.forget_s = line, bundle, label, wanted, forget_s
        self.name = line.name
        self.segment: Segment | None = None
        self._size: tuple[int, int] | None = None
        self.tracks = TrackTable(side=(np.int8, 0), x=(np.float64, 0.0), y=(np.float64, 0.0))
        self.totals: dict[str, Counter[str]] = {name: Counter() for name in line.directions}

    def shape(self, size: tuple[int, int]) -> Segment:
        """The line in pixels of frames of ``size`` (width, height)."""
        if self.segment is None or self._size != size:
            self.segment, self._size = Segment(to_pixels(self.line, size)), size
        return self.segment

    def points(self, size: tuple[int, int]) -> np.ndarray:
        segment = self.shape(size)
        return np.stack([segment.a, segment.b])

    def update(self, detections: Detections, pts: float, size: tuple[int, int]) -> list[dict[str, Any]]:
        """This frame's crossings of the line."""
        boxes, ids, class_ids = tracked(detections, self.wanted)
        points = anchor_points(boxes, self.line.anchor)
        segment = self.shape(size)
        distance = segment.side(points)
        t = self.tracks
        rows = t.rows(ids, pts)
        clear = np.abs(distance) >= MARGIN
        side = np.where(clear, np.sign(distance), 0).astype(np.int8)
        turned = clear & (t.side[rows] != 0) & (side != t.side[rows])
        last = np.stack([t.x[rows], t.y[rows]], 1)
        crossed = np.flatnonzero(turned & segment.crossed_by(last, points))
        events = []
        for i in crossed.tolist():
            direction = self.line.directions[0 if t.side[rows[i]] < 0 else 1]
            label = self.label(int(class_ids[i]))
            self.totals[direction][label] += 1
            events.append({"type": "cross", "line": self.line.name, "bundle": self.bundle, "track_id": int(ids[i]),
                           "label": label, "direction": direction,
                           "box": np.round(boxes[i].astype(np.float64), 1).tolist()})
        t.side[rows[clear]] = side[clear]
        t.x[rows[clear]], t.y[rows[clear]] = points[clear, 0], points[clear, 1]
        t.drop(t.unseen(pts, self.forget_s))
        return events

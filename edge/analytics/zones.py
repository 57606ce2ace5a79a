"""A zone over one bundle's tracked detections: who is inside, and the events of their comings and goings.

Per frame, every tracked detection of the zone's classes is tested at once (:class:`~edge.analytics.shapes.
Polygon`), then the per-track state moves on as array operations: a track is inside once its anchor has been
inside for ``debounce`` frames in a row (and outside likewise), so a box that flickers on the border makes
no stream of events. Events: ``enter``; ``exit`` (with the seconds spent inside; ``"lost": true`` when the
track vanished inside, after ``forget_s``); ``dwell`` once per stay that reaches ``dwell_s``; ``count`` when
``max_count`` or more tracks are inside, again only after the count has dropped below it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edge.analytics.settings import ZoneSettings
from edge.analytics.shapes import Polygon, anchor_points, to_pixels
from edge.analytics.table import TrackTable, tracked
from edge.results import Detections, Label


def _round_box(box: np.ndarray) -> list[float]:
    return np.round(box.astype(np.float64), 1).tolist()


class ZoneCounter:
    """One zone on one detection bundle of one stream; ``wanted`` holds the class ids it counts (None: all)."""

    def __init__(self, zone: ZoneSettings, bundle: str, label: Label, wanted: np.ndarray | None, debounce: int,
                 forget_s: float):
        self.zone, self.bundle, self.label, self.wanted = zone, bundle, label, wanted
        self.name = zone.name
        self.debounce, self.forget_s = debounce, forget_s
        self.polygon: Polygon | None = None
        self._size: tuple[int, int] | None = None
        self.tracks = TrackTable(inside=(bool, False), pending=(np.int64, 0), since=(np.float64, 0.0),
                                 dwelt=(bool, False), class_id=(np.int64, 0))
        self.crowded = False
        self.totals: dict[str, Counter[str]] = {kind: Counter() for kind in ("enter", "exit", "dwell")}
        self.count_events = 0

    def shape(self, size: tuple[int, int]) -> Polygon:
        """The zone in pixels of frames of ``size`` (width, height)."""
        if self.polygon is None or self._size != size:
            self.polygon, self._size = Polygon(to_pixels(self.zone, size)), size
        return self.polygon

    def points(self, size: tuple[int, int]) -> np.ndarray:
        return self.shape(size).points

    def occupancy(self) -> dict[str, int]:
        """Tracks inside now, by label."""
        counts = np.bincount(self.tracks.class_id[self.tracks.inside])
        return {self.label(c): int(counts[c]) for c in np.flatnonzero(counts).tolist()}

    def update(self, detections: Detections, pts: float, size: tuple[int, int]) -> list[dict[str, Any]]:
        """This frame's events for the zone."""
        boxes, ids, class_ids = tracked(detections, self.wanted)
        inside_now = self.shape(size).contains(anchor_points(boxes, self.zone.anchor))
        t = self.tracks
        rows = t.rows(ids, pts)
        t.class_id[rows] = class_ids
        pending = np.where(inside_now != t.inside[rows], t.pending[rows] + 1, 0)
        flip = pending >= self.debounce
        t.pending[rows] = np.where(flip, 0, pending)
        t.inside[rows] ^= flip
        events = [self._event("exit", row, pts) for row in rows[flip & ~inside_now].tolist()]
        entered = flip & inside_now
        t.since[rows[entered]] = pts
        t.dwelt[rows[entered]] = False
        events += [self._event("enter", row, pts, box=_round_box(box))
                   for row, box in zip(rows[entered].tolist(), boxes[entered])]
        events += self._forget(pts) + self._dwell(pts) + self._count()
        return events

    def _event(self, kind: str, row: int, pts: float, **more: Any) -> dict[str, Any]:
        t = self.tracks
        label = self.label(int(t.class_id[row]))
        self.totals[kind][label] += 1
        event = {"type": kind, "zone": self.zone.name, "bundle": self.bundle, "track_id": int(t.ids[row]),
                 "label": label, **more}
        if kind in ("exit", "dwell"):
            event["dwell_s"] = round(pts - float(t.since[row]), 3)
        return event

    def _forget(self, pts: float) -> list[dict[str, Any]]:
        gone = self.tracks.unseen(pts, self.forget_s)
        events = [self._event("exit", row, pts, lost=True) for row in np.flatnonzero(gone & self.tracks.inside)]
        self.tracks.drop(gone)
        return events

    def _dwell(self, pts: float) -> list[dict[str, Any]]:
        if self.zone.dwell_s is None:
            return []
        t = self.tracks
        due = np.flatnonzero(t.inside & ~t.dwelt & (pts - t.since >= self.zone.dwell_s))
        t.dwelt[due] = True
        return [self._event("dwell", row, pts) for row in due.tolist()]

    def _count(self) -> list[dict[str, Any]]:
        limit = self.zone.max_count
        if limit is None:
            return []
        count = int(np.count_nonzero(self.tracks.inside))
        was, self.crowded = self.crowded, count >= limit
        if self.crowded and not was:
            self.count_events += 1
            return [{"type": "count", "zone": self.zone.name, "bundle": self.bundle, "count": count,
                     "max_count": limit}]
        return []

"""A zone over one segmentation bundle: the fraction of the zone each class covers, on every frame.

The zone's mask is drawn once per frame size; a frame's fractions are one masked histogram of the class map
(``cv2.calcHist``; for a multi-label map, whose pixels hold a bit per class, one count per class over the
zone's pixels).
Event: ``coverage`` when a class reaches ``max_fraction`` of the zone, again only after it has dropped below.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import cv2
import numpy as np

from edge.analytics.settings import ZoneSettings
from edge.analytics.shapes import Polygon, to_pixels
from edge.results import Label, Segmentation


class ZoneCoverage:
    """One zone on one segmentation bundle of one stream; ``wanted`` holds the class ids it reports (None: all)."""

    def __init__(self, zone: ZoneSettings, bundle: str, label: Label, wanted: np.ndarray | None):
        self.zone, self.bundle, self.label, self.wanted = zone, bundle, label, wanted
        self.name = zone.name
        self._polygon: Polygon | None = None
        self._size: tuple[int, int] | None = None
        self._pixels = np.zeros(0, np.int64)  # flat indices of the zone's pixels
        self._area = 0
        self._covered = np.zeros(0, bool)  # per class: at or above max_fraction on the last frame
        self.totals: Counter[str] = Counter()  # coverage events by label

    def shape(self, size: tuple[int, int]) -> Polygon:
        """The zone in pixels of frames of ``size`` (width, height)."""
        if self._polygon is None or self._size != size:
            self._polygon, self._size = Polygon(to_pixels(self.zone, size)), size
            self._pixels = np.flatnonzero(self._polygon.mask(size))
            self._area = max(len(self._pixels), 1)
        return self._polygon

    def points(self, size: tuple[int, int]) -> np.ndarray:
        return self.shape(size).points

    @property
    def covered(self) -> bool:
        """Whether a class covered ``max_fraction`` of the zone on the last frame."""
        return bool(self._covered.any())

    def fractions(self, segmentation: Segmentation) -> np.ndarray:
        """``[C]`` fraction of the zone's pixels each class covers."""
        class_map = segmentation.class_map
        size = (class_map.shape[1], class_map.shape[0])
        mask = self.shape(size).mask(size)
        classes = segmentation.num_classes
        if segmentation.multi_label:
            inside = class_map.ravel()[self._pixels]
            counts = np.array([np.count_nonzero(inside & (1 << k)) for k in range(classes)], np.float64)
        else:
            counts = cv2.calcHist([class_map], [0], mask, [classes], [0, classes]).ravel()
        return counts / self._area

    def update(self, segmentation: Segmentation) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """This frame's fractions of the zone by label (those above 0) and its ``coverage`` events."""
        fractions = self.fractions(segmentation)
        reported = np.flatnonzero(fractions > 0) if self.wanted is None else self.wanted
        by_label = {self.label(c): round(float(fractions[c]), 6) for c in reported.tolist() if fractions[c] > 0}
        limit = self.zone.max_fraction
        if limit is None:
            return by_label, []
        covered = np.zeros(len(fractions), bool)
        covered[reported] = fractions[reported] >= limit
        was = self._covered if len(self._covered) == len(covered) else np.zeros_like(covered)
        self._covered = covered
        events = []
        for c in np.flatnonzero(covered & ~was).tolist():
            label = self.label(c)
            self.totals[label] += 1
            events.append({"type": "coverage", "zone": self.zone.name, "bundle": self.bundle, "label": label,
                           "fraction": round(float(fractions[c]), 4), "max_fraction": limit})
        return by_label, events

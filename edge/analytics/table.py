"""Per-track state as columns of NumPy arrays keyed by track id, so a frame updates every track at once."""

from __future__ import annotations

import numpy as np

from edge.results import Detections


def tracked(detections: Detections, wanted: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The boxes, track ids and class ids of the tracked detections (id > 0) of the ``wanted`` classes (None:
    every class)."""
    ids = detections.track_ids if detections.track_ids is not None else np.zeros(len(detections), np.int64)
    chosen = ids > 0
    if wanted is not None:
        chosen &= np.isin(detections.class_ids, wanted)
    return detections.boxes[chosen], ids[chosen], detections.class_ids[chosen]


class TrackTable:
    """Rows of per-track values, one per track id, sorted by id. ``columns`` names each column's dtype and the
    value a new track starts with; they are attributes of the table (``table.inside``)."""

    def __init__(self, **columns: tuple[type, object]):
        self._defaults = columns
        self.ids = np.zeros(0, np.int64)
        self.last_pts = np.zeros(0, np.float64)  # when each track was last seen
        for name, (dtype, _) in columns.items():
            setattr(self, name, np.zeros(0, dtype))

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids: np.ndarray, pts: float) -> np.ndarray:
        """The rows of ``ids`` (unique), adding a row for each new one; marks them seen at ``pts``."""
        new = np.setdiff1d(ids, self.ids, assume_unique=True)
        if len(new):
            order = np.argsort(np.concatenate([self.ids, new]), kind="stable")
            self.ids = np.concatenate([self.ids, new])[order]
            self.last_pts = np.concatenate([self.last_pts, np.full(len(new), pts)])[order]
            for name, (dtype, default) in self._defaults.items():
                column = getattr(self, name)
                setattr(self, name, np.concatenate([column, np.full(len(new), default, dtype)])[order])
        rows = np.searchsorted(self.ids, ids)
        self.last_pts[rows] = pts
        return rows

    def unseen(self, pts: float, forget_s: float) -> np.ndarray:
        """``[rows]`` bool: tracks not seen for ``forget_s`` seconds."""
        return self.last_pts < pts - forget_s

    def drop(self, rows: np.ndarray) -> None:
        """Removes the tracks where ``rows`` (bool) is true."""
        keep = ~rows
        self.ids, self.last_pts = self.ids[keep], self.last_pts[keep]
        for name in self._defaults:
            setattr(self, name, getattr(self, name)[keep])

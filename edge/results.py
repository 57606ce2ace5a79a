"""What decoders produce: plain arrays in source-frame pixels, turned into event JSON at the sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Detections:
    """N detections as parallel arrays; ``keypoints`` is ``[N, K, 3]`` (x, y, score) for detectors with landmarks."""

    boxes: np.ndarray  # [N, 4] float32 x1, y1, x2, y2
    scores: np.ndarray  # [N] float32
    class_ids: np.ndarray  # [N] int64
    keypoints: np.ndarray | None = None
    track_ids: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def to_event(self, label: Callable[[int], str]) -> dict[str, Any]:
        """The contract's detection RESULT: boxes to 0.1 px, scores to 1e-4."""
        boxes = np.round(self.boxes.astype(np.float64), 1).tolist()
        scores = np.round(self.scores.astype(np.float64), 4).tolist()
        class_ids = self.class_ids.tolist()
        items = [{"label": label(c), "class_id": c, "score": s, "box": b}
                 for c, s, b in zip(class_ids, scores, boxes)]
        if self.keypoints is not None:
            for item, points in zip(items, np.round(self.keypoints.astype(np.float64), 2).tolist()):
                item["keypoints"] = points
        if self.track_ids is not None:
            for item, track in zip(items, self.track_ids.tolist()):
                item["track_id"] = track
        return {"detections": items}

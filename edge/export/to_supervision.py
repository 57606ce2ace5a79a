"""Results as ``supervision.Detections`` (Roboflow's supervision: annotators, zones, line counters, trackers),
for users of that library. supervision is an optional dependency (``pip install 'edge[supervision]'``),
imported only when :func:`to_supervision` is called.

Both a runtime result (:class:`edge.results.Detections` with its bundle's label function) and an event's
detection RESULT (a dict from ``events.jsonl``) convert; :func:`supervision_fields` gives the arrays in the
shapes ``supervision.Detections`` takes (``xyxy`` float32 [N, 4], ``confidence`` float32 [N], ``class_id`` int
[N], ``tracker_id`` int [N] or ``None``, ``data["class_name"]`` str [N]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edge.results import Detections, Label


def supervision_fields(result: Detections | Mapping[str, Any], label: Label | None = None) -> dict[str, Any]:
    """The keyword arguments of ``supervision.Detections`` for ``result``; ``label`` names class ids of a
    runtime result (an event's entries carry their labels)."""
    if isinstance(result, Detections):
        if label is None:
            raise TypeError("a runtime result needs its bundle's label function (RunnerGraph.labels[name])")
        names = [label(c) for c in result.class_ids.tolist()]
        boxes, scores, class_ids, tracks = result.boxes, result.scores, result.class_ids, result.track_ids
    else:
        items = result["detections"]
        names = [d["label"] for d in items]
        boxes = np.array([d["box"] for d in items], np.float32).reshape(-1, 4)
        scores = np.array([d["score"] for d in items], np.float32)
        class_ids = np.array([d["class_id"] for d in items], np.int64)
        tracked = [d.get("track_id") for d in items]
        tracks = np.array(tracked, np.int64) if items and None not in tracked else None
    return {"xyxy": np.asarray(boxes, np.float32).reshape(-1, 4), "confidence": np.asarray(scores, np.float32),
            "class_id": np.asarray(class_ids, np.int64), "tracker_id": tracks,
            "data": {"class_name": np.array(names, dtype=str)}}


def to_supervision(result: Detections | Mapping[str, Any], label: Label | None = None) -> Any:
    """``result`` as a ``supervision.Detections``."""
    try:
        import supervision
    except ImportError:
        raise ImportError("to_supervision needs supervision: pip install 'edge[supervision]'") from None
    return supervision.Detections(**supervision_fields(result, label))

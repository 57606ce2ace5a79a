"""What the daemon's live page shows (``/status.json``): per stream its state and numbers, the bundles and the
backend each runs, the latest detections, and the fps and latency of the last minutes; for the daemon its
host, version and uptime. The page itself (HTML, a small canvas chart, no external script) is
:mod:`streams.live_page`; it polls this document once a second.

The history is sampled in the dispatcher loop (:meth:`History.tick`, a clock read when nothing is due), one
point per stream per second for the last five minutes, in fixed-size deques: the page opened late still shows
the minutes before it, and a daemon that runs for months holds the same few kilobytes.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from typing import Any

from edge import __version__
from edge.pipeline import Pipeline
from edge.pipeline.sinks import LatestEvents
from edge.telemetry import status

HISTORY_POINTS = 300
SAMPLE_S = 1.0
SHOWN_DETECTIONS = 8  # per bundle, best first, on a tile


class History:
    """fps and capture-to-result latency per stream, one point per ``every_s``, the last ``points`` of them."""

    def __init__(self, pipeline: Pipeline, every_s: float = SAMPLE_S, points: int = HISTORY_POINTS):
        self.pipeline, self.every_s = pipeline, every_s
        self.times: deque[float] = deque(maxlen=points)
        self.fps = [deque(maxlen=points) for _ in pipeline.stats.streams]
        self.latency_ms = [deque(maxlen=points) for _ in pipeline.stats.streams]
        self._last = 0.0

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        self.times.append(round(time.time(), 1))
        for index, stats in enumerate(self.pipeline.stats.streams):
            self.fps[index].append(round(stats.fps, 2))
            self.latency_ms[index].append(round(stats.last_latency_s * 1e3, 1) if stats.fps else None)


def bundles_of(pipeline: Pipeline) -> list[dict[str, str]]:
    """Each bundle of the run: its task and what runs it (backend, precision)."""
    return [{"name": r.name, "task": r.bundle.task, "backend": r.backend.name, "precision": r.precision}
            for r in pipeline.workers[0].runners]


def _latest(event: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stream's latest event, shortened for a tile: the best detections (label, score, track) per bundle,
    or the classes a segmentation bundle found."""
    if event is None:
        return None
    shown: dict[str, Any] = {}
    for bundle, result in event["results"].items():
        if "detections" in result:
            shown[bundle] = [{"label": d["label"], "score": d["score"], **({"track": d["track_id"]}
                              if d.get("track_id", -1) >= 0 else {})} for d in result["detections"][:SHOWN_DETECTIONS]]
        elif "class_fractions" in result:
            shown[bundle] = [{"label": label, "fraction": f} for label, f in result["class_fractions"].items()]
        elif "poses" in result:
            shown[bundle] = [{"label": "pose", "score": p["score"]} for p in result["poses"][:SHOWN_DETECTIONS]]
        elif "top" in result:
            shown[bundle] = result["top"][:SHOWN_DETECTIONS]
    return {"frame": event["frame"], "time": event.get("time"), "results": shown}


def live_status(pipeline: Pipeline, history: History, latest: LatestEvents, started: float) -> dict[str, Any]:
    """The live page's document: :func:`edge.telemetry.status` per stream, plus everything a tile draws."""
    doc = status(pipeline)
    for index, (name, stream) in enumerate(doc["streams"].items()):
        stream["history"] = {"fps": list(history.fps[index]), "latency_ms": list(history.latency_ms[index])}
        stream["latest"] = _latest(latest.events.get(name))
        stream["size"] = pipeline.stats.streams[index].size
    graph = pipeline.workers[0]
    return {"host": socket.gethostname(), "version": __version__, "uptime_s": round(time.monotonic() - started, 1),
            "backend": graph.backend_names, "precision": graph.precisions, "bundles": bundles_of(pipeline),
            "history_times": list(history.times), "sample_s": history.every_s, **doc}

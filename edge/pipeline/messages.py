"""What travels between the pipeline's threads, as named types: one frame's results from an inference worker
to the dispatcher (:class:`Inferred`), and one frame ready for the sinks (:class:`FrameResult`).

A :class:`FrameResult` carries results and each bundle's labels, never the runners that made them: a sink
needs nothing above this module. Its picture with the results drawn is made on a copy, once per frame
however many sinks ask, so the decoded frame every sink shares stays as decoded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from edge.analytics.stage import FrameAnalytics
from edge.draw import draw_results
from edge.results import Label
from edge.schedule import FramePlan
from streams.base import Frame

# (image, [(result, label), ...]) → a new image with the results drawn; the input image is left as it is.
Annotate = Callable[[np.ndarray, Sequence[tuple[Any, Label]]], np.ndarray]


def annotate_copy(image: np.ndarray, results: Sequence[tuple[Any, Label]]) -> np.ndarray:
    """``image`` with ``results`` drawn, on a copy."""
    drawn = image.copy()
    draw_results(drawn, results)
    return drawn


class Inferred(NamedTuple):
    """A worker's answer for one frame: its results by bundle name and the stage seconds it cost each bundle
    (its share of a batched call), or the error that ended the call; the frame's plan when bundles may skip
    frames. Ordered by ``order`` (take order)."""

    order: int
    frame: Frame
    results: dict[str, Any]
    timings: dict[str, dict[str, float]]
    error: Exception | None = None
    plan: FramePlan | None = None


def to_events(results: dict[str, Any], labels: dict[str, Label]) -> dict[str, Any]:
    """Each bundle's result as the contract's event RESULT, by bundle name."""
    return {name: result.to_event(labels[name]) for name, result in results.items()}


@dataclass
class FrameResult:
    """One frame through the bundles, as every sink sees it.

    ``results`` and ``labels`` (class id → name) are keyed by bundle name; ``event`` is the contract's event
    line, :attr:`event_json` the same encoded once for every sink that sends it; ``fps`` the stream's rate.
    The event adds to the contract's keys ``time``, the wall-clock time of capture (Unix seconds; for a
    recorded file, when its decoding started), and ``size``, the frame's ``[width, height]``, so an event
    line alone places its boxes (exports, dashboards).
    ``carried``: the bundles whose result was carried over from an earlier frame (their RESULT says
    ``"inferred": false``); ``analytics``: the frame's zone and line events (:mod:`edge.analytics`), which
    the event line holds too.
    """

    frame: Frame
    results: dict[str, Any]
    labels: dict[str, Label]
    fps: float
    annotate: Annotate = field(default=annotate_copy, repr=False)
    carried: frozenset[str] = frozenset()
    analytics: FrameAnalytics | None = None
    event: dict[str, Any] = field(init=False)
    _event_json: str | None = field(default=None, init=False, repr=False)
    _annotated: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        frame = self.frame
        height, width = frame.image.shape[:2]
        captured = time.time() - (time.monotonic() - frame.captured)
        self.event = {"stream": frame.stream, "frame": frame.index, "pts": round(frame.pts, 6),
                      "time": round(captured, 3), "size": [width, height],
                      "results": to_events(self.results, self.labels)}
        for name in self.carried:
            self.event["results"][name]["inferred"] = False
        if self.analytics is not None:
            self.analytics.add_to(self.event)

    @property
    def event_json(self) -> str:
        """:attr:`event` as compact JSON, encoded at the first ask."""
        if self._event_json is None:
            self._event_json = json.dumps(self.event, separators=(",", ":"))
        return self._event_json

    def annotated(self) -> np.ndarray:
        """The frame with every bundle's results (and the zones and lines) drawn, on a copy made at the first ask."""
        if self._annotated is None:
            pairs = [(result, self.labels[name]) for name, result in self.results.items()]
            if self.analytics is not None and self.analytics.shapes:
                pairs.append((self.analytics, str))
            self._annotated = self.annotate(self.frame.image, pairs)
        return self._annotated

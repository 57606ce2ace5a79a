"""The analytics stage: every zone and line of every stream, run by the pipeline's dispatcher on each frame, in
frame order, after tracking and before the sinks.

It turns a frame's results into its analytics (:class:`FrameAnalytics`: events, class fractions inside zones,
what to draw) and keeps the running counters per stream, zone or line, and label that ``summary.json``,
``/status.json`` and Prometheus read. The counters are read from other threads (HTTP), so updates and reads
hold one lock. Nothing here depends on timing: a replay gives the same analytics every time.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.analytics.coverage import ZoneCoverage
from edge.analytics.lines import LineCounter
from edge.analytics.media import ClipCue, MediaPlan
from edge.analytics.settings import AnalyticsSettings, ShapeSettings
from edge.analytics.zones import ZoneCounter
from edge.bundle import Bundle
from edge.config import load_yaml
from edge.errors import UsageError
from edge.results import Detections, Segmentation
from streams.base import Frame


@dataclass(frozen=True)
class ShapeView:
    """A zone or line as drawn on one frame: its points in pixels, a caption with its counts, whether
    something is inside it (or crossed it) now."""

    name: str
    points: np.ndarray  # [K, 2] int32
    closed: bool  # a zone's polygon, else a line drawn A → B with an arrow to its first direction's side
    caption: str
    active: bool


@dataclass
class FrameAnalytics:
    """One frame's analytics: ``events`` (each a dict with ``type``), class fractions inside zones by
    segmentation bundle and zone, the shapes to draw, and the clip the frame is part of."""

    events: list[dict[str, Any]] = field(default_factory=list)
    fractions: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    shapes: list[ShapeView] = field(default_factory=list)
    clip: ClipCue | None = None  # the clip this frame goes into

    def add_to(self, event: dict[str, Any]) -> None:
        """Adds them to the frame's event line: ``"analytics"`` (on frames with events) and each segmentation
        RESULT's ``"zones"``."""
        if self.events:
            event["analytics"] = self.events
        for bundle, zones in self.fractions.items():
            event["results"][bundle]["zones"] = zones


def _wanted(shape: ShapeSettings, bundle: Bundle) -> np.ndarray | None:
    """The bundle's class ids the shape counts; None for all; empty when it has none of them."""
    if shape.classes is None:
        return None
    return np.array([i for i, label in enumerate(bundle.labels) if label in shape.classes], np.int64)


class _Stream:
    """One stream's counters, built from the settings that apply to it."""

    def __init__(self, settings: AnalyticsSettings, name: str, bundles: Sequence[Bundle]):
        self.zones: list[ZoneCounter] = []
        self.coverage: list[ZoneCoverage] = []
        self.lines: list[LineCounter] = []
        self.size: tuple[int, int] | None = None
        for zone in settings.zones:
            if zone.stream in (None, name):
                for bundle, wanted in _bundles_of(zone, bundles, ("detection", "segmentation")):
                    if bundle.task == "detection":
                        self.zones.append(ZoneCounter(zone, bundle.name, bundle.label, wanted, settings.debounce,
                                                      settings.forget_s))
                    else:
                        self.coverage.append(ZoneCoverage(zone, bundle.name, bundle.label, wanted))
        for line in settings.lines:
            if line.stream in (None, name):
                self.lines.extend(LineCounter(line, bundle.name, bundle.label, wanted, settings.forget_s)
                                  for bundle, wanted in _bundles_of(line, bundles, ("detection",)))


def _bundles_of(shape: ShapeSettings, bundles: Sequence[Bundle], tasks: tuple[str, ...]
                ) -> list[tuple[Bundle, np.ndarray | None]]:
    chosen = [b for b in bundles if b.task in tasks and shape.bundle in (None, b.name)]
    return [(b, wanted) for b in chosen for wanted in [_wanted(shape, b)] if wanted is None or len(wanted)]


class AnalyticsStage:
    """The zones and lines of ``settings`` on ``streams`` (names, by source index) over ``bundles``' results.
    Settings that match nothing in this run (a stream, a bundle, a class) are a :class:`UsageError` naming
    ``where`` (the analytics file)."""

    def __init__(self, settings: AnalyticsSettings, streams: Sequence[str], bundles: Sequence[Bundle],
                 where: str = "--analytics"):
        _check(settings, streams, bundles, where)
        self.settings = settings
        self.streams = list(streams)
        self._per_stream = [_Stream(settings, name, bundles) for name in streams]
        self.media = MediaPlan(settings)
        self._lock = threading.Lock()

    def apply(self, frame: Frame, results: dict[str, Any]) -> FrameAnalytics:
        """The frame's analytics; the counters move on."""
        stream = self._per_stream[frame.source]
        size = (frame.image.shape[1], frame.image.shape[0])
        found = FrameAnalytics()
        with self._lock:
            stream.size = size
            for zone in stream.zones:
                found.events += zone.update(_detections(results[zone.bundle]), frame.pts, size)
            for line in stream.lines:
                found.events += line.update(_detections(results[line.bundle]), frame.pts, size)
            for coverage in stream.coverage:
                segmentation = results[coverage.bundle]
                if isinstance(segmentation, Segmentation):
                    fractions, events = coverage.update(segmentation)
                    found.fractions.setdefault(coverage.bundle, {})[coverage.zone.name] = fractions
                    found.events += events
            found.shapes = self._views(stream, found.events)
        found.clip = self.media.name(frame, found.events)
        return found

    def _views(self, stream: _Stream, events: list[dict[str, Any]]) -> list[ShapeView]:
        crossed = {e["line"] for e in events if e["type"] == "cross"}
        views = []
        for name, zones in _by_name(stream.zones).items():
            inside = sum(sum(z.occupancy().values()) for z in zones)
            views.append(ShapeView(name, _pixels(zones[0], stream.size), True, f"{name} {inside}", inside > 0))
        counted = {view.name for view in views}
        for name, zones in _by_name(stream.coverage).items():  # zones on segmentation maps only
            if name not in counted:
                views.append(ShapeView(name, _pixels(zones[0], stream.size), True, name, any(z.covered for z in zones)))
        for name, lines in _by_name(stream.lines).items():
            counts = " ".join(f"{d} {sum(sum(x.totals[d].values()) for x in lines)}" for d in lines[0].line.directions)
            views.append(ShapeView(name, _pixels(lines[0], stream.size), False, f"{name}: {counts}", name in crossed))
        return views

    def summary(self) -> dict[str, Any]:
        """Running counters per stream: zones (events by type and label, ``inside`` now), lines (crossings by
        direction and label); for ``summary.json``."""
        with self._lock:
            return {name: _stream_counts(stream) for name, stream in zip(self.streams, self._per_stream)}

    def status(self) -> dict[str, Any]:
        """The counters with each shape's points as fractions of the frame, for ``/status.json`` and the live page
        (which can draw them over the preview at any size); points come once a frame has given the size."""
        with self._lock:
            status = {}
            for name, stream in zip(self.streams, self._per_stream):
                counts = _stream_counts(stream)
                for kind, shapes in (("zones", [*stream.zones, *stream.coverage]), ("lines", stream.lines)):
                    for shape_name, same in _by_name(shapes).items():
                        counts[kind][shape_name]["points"] = _fractions_of_frame(same[0], stream.size)
                status[name] = {"frame_size": stream.size, **counts}
            return status


def load_analytics(path: str | Path) -> AnalyticsSettings:
    """Reads and checks an analytics file; :class:`UsageError` (exit 2) naming the file, line and key."""
    settings, _, _ = load_yaml(path, AnalyticsSettings, "needs 'zones' or 'lines'")
    if not settings.zones and not settings.lines:
        raise UsageError(f"{path}: no zones and no lines")
    return settings


def _detections(result: Any) -> Detections:
    return result if isinstance(result, Detections) else Detections.empty()


ShapeCounter = ZoneCounter | LineCounter | ZoneCoverage


def _by_name(counters: Sequence[ShapeCounter]) -> dict[str, list[Any]]:
    """Counters of the same zone or line (one per bundle), by its name, in the settings' order."""
    grouped: dict[str, list[Any]] = {}
    for counter in counters:
        grouped.setdefault(counter.name, []).append(counter)
    return grouped


def _pixels(counter: ShapeCounter, size: tuple[int, int]) -> np.ndarray:
    return np.round(counter.points(size)).astype(np.int32)


def _fractions_of_frame(counter: ShapeCounter, size: tuple[int, int] | None) -> list[list[float]] | None:
    if size is None:
        return None
    return np.round(counter.points(size) / np.asarray(size, np.float64), 5).tolist()


def _stream_counts(stream: _Stream) -> dict[str, Any]:
    zones: dict[str, Any] = {}
    for name, counters in _by_name(stream.zones).items():
        totals = {kind: sum((z.totals[kind] for z in counters), Counter()) for kind in ("enter", "exit", "dwell")}
        inside = sum((Counter(z.occupancy()) for z in counters), Counter())
        zones[name] = {**{k: dict(sorted(v.items())) for k, v in totals.items()},
                       "inside": dict(sorted(inside.items())), "count_events": sum(z.count_events for z in counters)}
    for coverage in stream.coverage:
        entry = zones.setdefault(coverage.zone.name, {})
        entry.setdefault("coverage", {})[coverage.bundle] = dict(sorted(coverage.totals.items()))
    lines = {name: {d: dict(sorted(sum((x.totals[d] for x in counters), Counter()).items()))
                    for d in counters[0].line.directions}
             for name, counters in _by_name(stream.lines).items()}
    return {"zones": zones, "lines": lines}


def _check(settings: AnalyticsSettings, streams: Sequence[str], bundles: Sequence[Bundle], where: str) -> None:
    """Each zone and line names streams, bundles and classes of this run and applies to something."""
    names = {b.name: b for b in bundles}
    for kind, shapes, tasks in (("zones", settings.zones, ("detection", "segmentation")),
                                ("lines", settings.lines, ("detection",))):
        for i, shape in enumerate(shapes):
            at = f"{where}: {kind}[{i}] '{shape.name}'"
            if shape.stream is not None and shape.stream not in streams:
                raise UsageError(f"{at}: stream '{shape.stream}' is not one of this run ({', '.join(streams)})")
            if shape.bundle is not None and (shape.bundle not in names or names[shape.bundle].task not in tasks):
                raise UsageError(f"{at}: bundle '{shape.bundle}' is not a {' or '.join(tasks)} bundle of this run")
            unknown = [c for c in shape.classes or () if not any(c in b.labels for b in bundles if b.task in tasks)]
            if unknown:
                raise UsageError(f"{at}: classes: '{unknown[0]}' is not a label of any {' or '.join(tasks)} bundle")
            if not _bundles_of(shape, bundles, tasks):
                raise UsageError(f"{at}: no {' or '.join(tasks)} bundle of this run counts it")

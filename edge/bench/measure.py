"""Timed runs for ``edge bench`` (and ``benchmarks/``): the pipeline as ``edge replay`` runs it, and the naive
single loop it is compared with, both through the same sinks, warm-up excluded.

A run delivers ``warmup`` frames unmeasured, then measures the next ``frames``: wall time and CPU time (this
process and its children) between the end of the warm-up and the last measured frame, each frame's delivery
time (fps over time), and per-stage latency: decode, preprocess, infer and postprocess as the pipeline records
them, draw (the annotated copy, timed around the annotator) and sinks (the rest of the sinks' work).

The naive loop is what a first script does: read a frame, run the bundles, track, draw, write, repeat, in one
thread with one inference session using every core. The pipeline overlaps those stages (decode ahead,
parallel inference workers, sinks while the next frames infer), so their ratio is what the pipeline buys on
this machine; both are measured in the same process, one after the other, under the same load.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.annotate import Annotator
from edge.bundle import Bundle
from edge.graph import RunnerGraph, make_workers
from edge.metrics import StageTimes
from edge.pipeline import Pipeline, Sink
from edge.pipeline.messages import FrameResult
from edge.pipeline.sinks import SinkSet
from edge.results import Detections
from edge.tracker import ByteTracker
from streams.feed import DecodeMode, SourceSpec
from streams.sources import open_source


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (decoder processes), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Measured:
    """A timed run: frames per second and CPU milliseconds per frame, loading and warm-up excluded; per-stage
    latency (``times``), per-bundle latency and when each measured frame was delivered (seconds from the
    start of measurement)."""

    frames: int
    wall_s: float
    cpu_s: float
    times: StageTimes = field(default_factory=StageTimes)
    per_bundle: dict[str, StageTimes] = field(default_factory=dict)
    delivered_s: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / max(1, self.frames) * 1e3


class TimedAnnotate:
    """The annotator, timed: ``seconds`` sums the time spent drawing (on whichever thread asks)."""

    def __init__(self, draw: Callable[..., np.ndarray]):
        self.draw = draw
        self.seconds = 0.0

    def __call__(self, image: np.ndarray, results: Sequence[tuple[Any, Any]]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.draw(image, results)
        finally:
            self.seconds += time.perf_counter() - t0


class Recorder:
    """The one sink of a measured run: writes each frame to ``sinks`` (a :class:`SinkSet`, so their failures
    count as in a run) and times them. The first ``warmup`` frames (at least one: the first call of a session
    is slow) are not measured; the clocks start as the last of them is written; the next ``frames`` are
    measured (all that come, if ``None``), then ``stop`` is called. ``on_measure`` runs as the first measured
    frame arrives (the pipeline empties its histograms), ``on_done`` as the first frame after the measured ones
    arrives (the pipeline's histograms then hold exactly the measured frames)."""

    critical = True

    def __init__(self, sinks: Sequence[Sink], annotate: TimedAnnotate, warmup: int, frames: int | None):
        if warmup < 1:
            raise ValueError("warmup must be at least 1 frame")
        self.sinks = SinkSet(sinks)
        self.annotate, self.warmup, self.frames = annotate, warmup, frames
        self.times = StageTimes()
        self.delivered: list[float] = []
        self.started = self.cpu_started = self.cpu_s = 0.0
        self.count = 0
        self.stop: Callable[[], None] = lambda: None
        self.on_measure: Callable[[], None] = lambda: None
        self.on_done: Callable[[], None] = lambda: None

    @property
    def done(self) -> bool:
        return self.frames is not None and len(self.delivered) >= self.frames

    def write(self, item: FrameResult) -> None:
        self.count += 1
        index = self.count - self.warmup  # 1-based among the measured frames; 0 for the last warm-up frame
        if index == 1:
            self.on_measure()
        elif self.frames is not None and index == self.frames + 1:
            self.on_done()
        drawn = self.annotate.seconds
        t0 = time.perf_counter()
        self.sinks.write(item)
        now = time.perf_counter()
        if index == 0:
            self.started, self.cpu_started = now, cpu_seconds()
        if index < 1 or (self.frames is not None and index > self.frames):
            return
        draw = self.annotate.seconds - drawn
        self.times.add("draw", draw)
        self.times.add("sinks", now - t0 - draw)
        self.delivered.append(now)
        if self.done:
            self.cpu_s = cpu_seconds() - self.cpu_started
            self.stop()

    def measured(self) -> Measured:
        """The measurement so far (all of it once the run ended)."""
        if not self.delivered:
            return Measured(0, 0.0, 0.0)
        cpu_s = self.cpu_s if self.done else cpu_seconds() - self.cpu_started
        return Measured(len(self.delivered), self.delivered[-1] - self.started, cpu_s, self.times, {},
                        [t - self.started for t in self.delivered])

    def close(self) -> None:
        self.sinks.close()


def run_pipeline(bundles: Sequence[Bundle], spec: SourceSpec, frames: int | None, *, warmup: int = 1,
                 backend: str = "auto", workers: int | None = None, threads: int | None = None,
                 decode: DecodeMode = DecodeMode.THREAD, track: bool = True, sinks: Sequence[Sink] = (),
                 seconds: float | None = None) -> tuple[Measured, Pipeline]:
    """The pipeline ``edge replay`` runs (parallel workers, in-order dispatch, tracking) into ``sinks``; sessions
    are opened and sinks closed outside the measurement. ``seconds`` stops a run of a live or paced source."""
    annotate = TimedAnnotate(Annotator().draw)
    recorder = Recorder(sinks, annotate, warmup, frames)
    graphs = make_workers(bundles, backend, threads, workers)
    snapshot: dict[str, Any] = {}
    try:
        pipeline = Pipeline([spec], graphs, [recorder], decode=decode, track=track)
        pipeline.annotate = annotate
        recorder.stop = pipeline.stop

        def take_snapshot() -> None:  # the histograms of exactly the measured frames
            snapshot["times"] = StageTimes.combined(s.times for s in pipeline.stats.streams)
            snapshot["per_bundle"] = {n: StageTimes.combined([t]) for n, t in pipeline.stats.per_bundle.items()}

        recorder.on_measure = pipeline.stats.restart_times
        recorder.on_done = take_snapshot
        timer = threading.Timer(seconds, pipeline.stop) if seconds else None
        if timer is not None:
            timer.start()
        try:
            pipeline.run()
        finally:
            if timer is not None:
                timer.cancel()
            recorder.close()  # the sinks: files finalised even when the run failed
        measured = recorder.measured()
        if not snapshot:
            take_snapshot()
    finally:
        for graph in graphs:
            graph.close()
    measured.times = StageTimes.combined([snapshot["times"], recorder.times])
    measured.per_bundle = snapshot["per_bundle"]
    return measured, pipeline


def run_naive(bundles: Sequence[Bundle], uri: str, frames: int | None, *, warmup: int = 1, backend: str = "auto",
              threads: int | None = None, track: bool = True, sinks: Sequence[Sink] = ()) -> Measured:
    """One thread: read → bundles (one session, ``threads`` threads) → track → draw → sinks, frame by frame."""
    from edge.backends.onnxruntime import usable_cpus

    annotate = TimedAnnotate(Annotator().draw)
    recorder = Recorder(sinks, annotate, warmup, frames)
    trackers: dict[str, ByteTracker] = {}
    graph = RunnerGraph(bundles, backend, threads or usable_cpus())
    try:
        with open_source(uri) as source:
            for frame in source:
                (results,) = graph.run([frame.image])
                if track:
                    for name, result in results.items():
                        if isinstance(result, Detections):
                            trackers.setdefault(name, ByteTracker()).update(result)
                before = len(recorder.delivered)
                recorder.write(FrameResult(frame, results, graph.labels, source.fps, annotate))
                if len(recorder.delivered) > before:  # a measured frame: its stages too
                    recorder.times.add("decode", frame.decode_s)
                    for stage, seconds in graph.timings.items():
                        recorder.times.add(stage, seconds)
                if recorder.done:
                    break
    finally:
        graph.close()
        recorder.close()
    return recorder.measured()

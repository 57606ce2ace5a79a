"""Shared by the benchmarks: the assets, the YOLOX-nano bundle, CPU accounting, and a pipeline run that stops
after N frames."""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.demo import find_assets, yolox_bundle
from edge.graph import make_workers
from edge.pipeline import Pipeline, Sink
from streams.feed import DecodeMode, SourceSpec

ASSETS = find_assets()
VIDEO = str(ASSETS / "videos/one-by-one-person-detection.mp4")
BUNDLE = yolox_bundle(ASSETS, Path(tempfile.gettempdir()) / "edge-bench-bundles")


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (decoder processes), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Measured:
    """A timed run: frames per second and CPU milliseconds per frame, loading excluded."""

    frames: int
    wall_s: float
    cpu_s: float

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / max(1, self.frames) * 1e3


class Counter:
    """A sink that counts frames, keeps capture-to-result latencies, and stops the pipeline at ``limit``."""

    critical = True

    def __init__(self, limit: int | None):
        self.limit, self.frames, self.latencies = limit, 0, []
        self.pipeline: Pipeline | None = None

    def write(self, item) -> None:
        self.frames += 1
        self.latencies.append(time.monotonic() - item.frame.captured)
        if self.limit is not None and self.frames >= self.limit and self.pipeline is not None:
            self.pipeline.stop()

    def close(self) -> None:
        pass


def run_pipeline(spec: SourceSpec, frames: int | None, decode: DecodeMode = DecodeMode.THREAD,
                 workers: int | None = None, threads: int | None = None, seconds: float | None = None,
                 sinks: Sequence[Sink] = ()) -> tuple[Measured, Counter, Pipeline]:
    """Runs the real pipeline (as replay/run do, into ``sinks`` besides the counter); returns the measurement
    (sessions are opened and sinks closed outside it), the counter and the pipeline."""
    models = make_workers([BUNDLE], "auto", threads, workers)
    counter = Counter(frames)
    pipeline = Pipeline([spec], models, [counter, *sinks], decode=decode)
    counter.pipeline = pipeline
    timer = threading.Timer(seconds, pipeline.stop) if seconds else None
    started, cpu = time.perf_counter(), cpu_seconds()
    if timer:
        timer.start()
    pipeline.run()
    measured = Measured(counter.frames, time.perf_counter() - started, cpu_seconds() - cpu)
    if timer:
        timer.cancel()
    pipeline.close_sinks()
    for m in models:
        m.close()
    return measured, counter, pipeline

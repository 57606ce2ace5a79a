"""Shared by the benchmarks: the assets, the YOLOX-nano bundle, and a pipeline run that stops after N frames."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from edge.demo import find_assets, yolox_bundle
from edge.pipeline import Pipeline, make_workers
from streams.feed import DecodeMode, SourceSpec

ASSETS = find_assets()
VIDEO = str(ASSETS / "videos/one-by-one-person-detection.mp4")
BUNDLE = yolox_bundle(ASSETS, Path(tempfile.gettempdir()) / "edge-bench-bundles")


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
                 workers: int | None = None, threads: int | None = None, seconds: float | None = None):
    """Runs the real pipeline (as replay/run do, without file sinks); returns (fps, counter, pipeline)."""
    models = make_workers([BUNDLE], "auto", threads, workers)
    counter = Counter(frames)
    pipeline = Pipeline([spec], models, [counter], decode=decode)
    counter.pipeline = pipeline
    timer = threading.Timer(seconds, pipeline.stop) if seconds else None
    if timer:
        timer.start()
    started = time.perf_counter()
    pipeline.run()
    wall = time.perf_counter() - started
    if timer:
        timer.cancel()
    for m in models:
        m.close()
    return counter.frames / wall, counter, pipeline

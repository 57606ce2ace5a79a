"""Shared by the benchmarks: the assets, the YOLOX-nano bundle, and a pipeline run that stops after N frames
(the timing itself is the runtime's, :mod:`edge.bench.measure`, which ``edge bench`` uses)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge.bench.measure import Measured, cpu_seconds, run_naive, run_pipeline
from edge.demo import find_assets, yolox_bundle
from edge.pipeline import Pipeline, Sink
from streams.feed import DecodeMode, SourceSpec

ASSETS = find_assets()
VIDEO = str(ASSETS / "videos/one-by-one-person-detection.mp4")
BUNDLE = yolox_bundle(ASSETS, Path(tempfile.gettempdir()) / "edge-bench-bundles")
WARMUP = 5  # frames run before measuring (the first calls of a session are slow)


def run_yolox(spec: SourceSpec, frames: int | None, decode: DecodeMode = DecodeMode.THREAD,
              workers: int | None = None, threads: int | None = None, seconds: float | None = None,
              sinks: Sequence[Sink] = ()) -> tuple[Measured, Pipeline]:
    """The real pipeline (as replay/run do, into ``sinks``) with YOLOX-nano, without tracking or drawing sinks
    unless given; warm-up excluded."""
    return run_pipeline([BUNDLE], spec, frames, warmup=WARMUP, workers=workers, threads=threads, decode=decode,
                        track=False, sinks=sinks, seconds=seconds)


def naive_yolox(frames: int) -> Measured:
    """The naive loop with YOLOX-nano: read, run, repeat (one session on every core), warm-up excluded."""
    return run_naive([BUNDLE], VIDEO, frames, warmup=WARMUP, track=False)


__all__ = ["ASSETS", "BUNDLE", "VIDEO", "Measured", "cpu_seconds", "naive_yolox", "run_yolox"]

"""``edge bench``: the pipeline against the naive loop, per backend and precision, and the sweep of workers ×
threads, measured in one process, warm-up excluded (:mod:`edge.bench.measure`).

For each backend configuration: ``repeat`` rounds of the naive loop then the pipeline as ``edge replay`` lays it
out (the ratio of a round is pipeline fps / naive fps; the result is the median, so load from other processes
hits both alike), then one pipeline run per sweep point. Every run writes what replay writes (events, the
annotated video unless ``video`` is off) into a temporary folder, so the sinks cost what they cost in a run.
The document holds fps and ratios, per-stage latency (decode, preprocess, infer, postprocess, draw, sinks and
end to end), per-bundle latency, fps over time and the machine's load before and after.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__, progress
from edge.bench.measure import Measured, run_naive, run_pipeline
from edge.bench.plan import BackendChoice, backend_choices, forget, resolve_bundles, resolve_source, sweep_steps
from edge.bundle import Bundle
from edge.errors import BadInputError
from edge.graph import default_layout
from edge.identity import bundle_identity
from edge.metrics import StageTimes
from edge.pipeline import Sink
from edge.pipeline.sinks import EventsSink, VideoSink
from streams.feed import SourceSpec

STAGES = ("decode", "preprocess", "infer", "postprocess", "draw", "sinks", "end_to_end")
FPS_POINTS = 200  # at most, per fps-over-time line


@dataclass
class BenchConfig:
    bundles: list[str]
    source: str
    frames: int = 200
    warmup: int = 10
    repeat: int = 2
    backend: str = "auto"
    workers: list[int] | None = None  # sweep values (default: 1, 2, 4, 8 up to the CPUs)
    threads: list[int] | None = None
    video: bool = True
    tracking: bool = True


@dataclass
class Charted:
    """What the charts of one backend configuration draw beyond the document: the latency histograms."""

    name: str
    pipeline: StageTimes
    naive: StageTimes
    sweep: list[dict[str, Any]] = field(default_factory=list)


def latency(times: StageTimes) -> dict[str, dict[str, float]]:
    """p50, p90, p99 and mean per stage in ms, in :data:`STAGES` order (others after)."""
    order = [s for s in STAGES if s in times.stages] + [s for s in times.stages if s not in STAGES]
    found = {}
    for stage in order:
        h = times.stages[stage]
        found[stage] = {"p50": round(h.percentile_ms(50), 3), "p90": round(h.percentile_ms(90), 3),
                        "p99": round(h.percentile_ms(99), 3), "mean": round(h.total_s / max(1, h.count) * 1e3, 3)}
    return found


def fps_over_time(delivered_s: Sequence[float]) -> list[list[float]]:
    """[seconds, fps] along a run: the rate over the last few frames at each frame (at most FPS_POINTS)."""
    times = np.asarray(delivered_s)
    if len(times) < 3:
        return []
    window = max(2, min(10, len(times) // 10))
    rates = window / np.maximum(times[window:] - times[:-window], 1e-9)
    step = max(1, len(rates) // FPS_POINTS)
    return [[round(float(t), 3), round(float(r), 2)] for t, r in zip(times[window::step], rates[::step])]


class Runs:
    """Measured runs of one backend configuration, each into its own temporary output folder."""

    def __init__(self, bundles: list[Bundle], uri: str, config: BenchConfig, choice: BackendChoice,
                 tick: Callable[[str], None]):
        self.bundles, self.uri, self.config, self.choice, self.tick = bundles, uri, config, choice, tick
        self.source: dict[str, Any] = {}  # what the pipeline saw of the source

    def _sinks(self, out: Path) -> list[Sink]:
        sinks: list[Sink] = [EventsSink(out / "events.jsonl")]
        return sinks + [VideoSink(out, several_streams=False)] if self.config.video else sinks

    def pipeline(self, workers: int | None, threads: int | None) -> tuple[Measured, str, str]:
        """A measured pipeline run; with the backend names and precisions that ran."""
        c = self.config
        with tempfile.TemporaryDirectory(prefix="edge-bench-") as out:
            measured, pipeline = run_pipeline(self.bundles, SourceSpec(self.uri), c.frames, warmup=c.warmup,
                                              backend=self.choice.name, workers=workers, threads=threads,
                                              track=c.tracking, sinks=self._sinks(Path(out)))
        graph, stream = pipeline.workers[0], pipeline.stats.streams[0]
        width, height = stream.size or (None, None)
        self.source = {"width": width, "height": height, "fps": round(stream.feed.fps, 3),
                       "length": stream.feed.length}
        self._check(measured)
        return measured, graph.backend_names, graph.precisions

    def naive(self) -> Measured:
        c = self.config
        with tempfile.TemporaryDirectory(prefix="edge-bench-") as out:
            measured = run_naive(self.bundles, self.uri, c.frames, warmup=c.warmup, backend=self.choice.name,
                                 track=c.tracking, sinks=self._sinks(Path(out)))
        self._check(measured)
        return measured

    def _check(self, measured: Measured) -> None:
        if measured.frames < 2:
            raise BadInputError(f"--source: {self.uri} has too few frames to measure after {self.config.warmup} "
                                f"of warm-up (lower --warmup)")


def measure(runs: Runs, workers: list[int], threads: list[int]) -> tuple[dict[str, Any], Charted]:
    """The rounds and the sweep of one backend configuration."""
    naive_runs, pipeline_runs, ratios = [], [], []
    backend = precision = ""
    for round_ in range(runs.config.repeat):
        naive = runs.naive()
        piped, backend, precision = runs.pipeline(None, None)
        naive_runs.append(naive)
        pipeline_runs.append(piped)
        ratios.append(piped.fps / naive.fps)
        runs.tick(f"{backend} {precision} round {round_ + 1}: pipeline/naive {ratios[-1]:.2f}×")
    naive_fps = statistics.median(m.fps for m in naive_runs)
    sweep = []
    for w in workers:
        for t in threads if runs.choice.backend != "tensorrt" else [1]:
            point, _, _ = runs.pipeline(w, t)
            sweep.append({"workers": w, "threads": t, "fps": round(point.fps, 2), "cpu_ms": round(point.cpu_ms, 2),
                          "ratio": round(point.fps / naive_fps, 3)})
            runs.tick(f"{backend} {precision} sweep {w}×{t}: {sweep[-1]['ratio']:.2f}× naive")
    layout = default_layout(None, None)
    pipeline_times = StageTimes.combined(m.times for m in pipeline_runs)
    per_bundle = {name: latency(StageTimes.combined(m.per_bundle[name] for m in pipeline_runs))
                  for name in pipeline_runs[0].per_bundle}
    doc = {
        "name": runs.choice.name, "backend": backend, "precision": precision,
        "ratio": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
        "naive": {"fps": [round(m.fps, 2) for m in naive_runs], "cpu_ms": [round(m.cpu_ms, 2) for m in naive_runs],
                  "latency_ms": latency(StageTimes.combined(m.times for m in naive_runs))},
        "pipeline": {"workers": layout[0], "threads": layout[1], "fps": [round(m.fps, 2) for m in pipeline_runs],
                     "cpu_ms": [round(m.cpu_ms, 2) for m in pipeline_runs], "latency_ms": latency(pipeline_times),
                     "per_bundle_latency_ms": per_bundle},
        "sweep": sweep,
        "best": max(sweep, key=lambda p: p["fps"]) if sweep else None,
        "fps_over_time": {"pipeline": fps_over_time(pipeline_runs[-1].delivered_s),
                          "naive": fps_over_time(naive_runs[-1].delivered_s)},
    }
    charted = Charted(runs.choice.name, pipeline_times, StageTimes.combined(m.times for m in naive_runs), sweep)
    return doc, charted


def bench(config: BenchConfig) -> tuple[dict[str, Any], list[Charted]]:
    """Runs the benchmark; returns its document and what the charts draw."""
    from edge.backends.onnxruntime import usable_cpus

    bundles = resolve_bundles(config.bundles)
    uri = resolve_source(config.source)
    cpus = usable_cpus()
    workers, threads = config.workers or sweep_steps(cpus), config.threads or sweep_steps(cpus)
    choices, skipped = backend_choices(bundles, config.backend)
    load_before = os.getloadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    total = len(choices) * (2 * config.repeat + len(workers) * len(threads))
    bar = progress.bar(total=total, desc="edge bench", unit="run")
    runs, charted, source = [], [], {}

    def tick(line: str) -> None:
        bar.set_postfix_str(line, refresh=False)
        bar.update(1)

    try:
        for choice in choices:
            measured = Runs(bundles, uri, config, choice, tick)
            doc, charts = measure(measured, workers, threads)
            runs.append(doc)
            charted.append(charts)
            source = measured.source
    finally:
        bar.close()
        forget(choices)
    doc = {
        "edge_version": __version__, "started": started, "host": socket.gethostname(),
        "platform": f"{platform.system()} {platform.machine()}", "cpus": cpus,
        "load_average": {"before": [round(v, 2) for v in load_before],
                         "after": [round(v, 2) for v in os.getloadavg()]},
        "source": {"uri": uri, **source, "frames": config.frames, "warmup": config.warmup, "repeat": config.repeat},
        "bundles": {b.name: bundle_identity(b) for b in bundles},
        "sinks": ["events"] + (["video"] if config.video else []), "tracking": config.tracking,
        "sweep": {"workers": workers, "threads": threads},
        "runs": runs, "skipped": skipped,
    }
    return doc, charted

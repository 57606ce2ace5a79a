"""What the daemon tells the operator: Prometheus metrics, a health verdict and a status document.

Metrics are read from the pipeline's own counters and constant-memory latency histograms when Prometheus
scrapes (a custom collector on a registry of the daemon's own), so the frame loop pays nothing for them
and two daemons in one process (tests) never share metrics.
"""

from __future__ import annotations

import logging
import platform
import time
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily

from edge import __version__
from edge.analytics.metrics import metric_families
from edge.metrics import LatencyHistogram
from edge.pipeline import Pipeline
from edge.pipeline.sinks import LabelCounter
from streams.feed import StreamState

# Seconds: per-stage latency bucket bounds, from a fast preprocess (0.5 ms) to a stalled stream (10 s).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("edge.perf")


class PipelineCollector:
    """A prometheus-client collector over a running :class:`Pipeline` (and, given one, the run's
    :class:`~edge.pipeline.sinks.LabelCounter` for detections per label)."""

    def __init__(self, pipeline: Pipeline, labels: LabelCounter | None = None):
        self.pipeline = pipeline
        self.labels = labels

    def collect(self):
        p = self.pipeline
        frames = CounterMetricFamily("edge_frames", "Frames processed", labels=["stream"])
        dropped = CounterMetricFamily("edge_dropped_frames", "Frames dropped to stay real-time", labels=["stream"])
        reconnects = CounterMetricFamily("edge_reconnects", "Times a stream was reopened", labels=["stream"])
        fps = GaugeMetricFamily("edge_fps", "Frames processed per second, recent", labels=["stream"])
        up = GaugeMetricFamily("edge_stream_up", "1 while the stream delivers frames", labels=["stream"])
        depth = GaugeMetricFamily("edge_queue_depth", "Decoded frames waiting for inference", labels=["stream"])
        latency = HistogramMetricFamily("edge_stage_latency_seconds", "Per-stage latency; end_to_end is capture "
                                        "to result", labels=["stream", "stage"])
        for index, stats in enumerate(p.stats.streams):
            name = stats.feed.name
            frames.add_metric([name], stats.frames)
            dropped.add_metric([name], p.queue.dropped[index])
            reconnects.add_metric([name], stats.feed.reconnects)
            fps.add_metric([name], stats.fps)
            up.add_metric([name], float(stats.feed.state is StreamState.STREAMING))
            depth.add_metric([name], p.queue.depth(index))
            for stage, histogram in stats.times.stages.items():
                latency.add_metric([name, stage], *_buckets(histogram))
        per_bundle = HistogramMetricFamily("edge_bundle_latency_seconds", "Per-bundle stage latency (preprocess, "
                                           "infer, postprocess, total)", labels=["bundle", "stage"])
        for bundle, times in p.stats.per_bundle.items():
            for stage, histogram in times.stages.items():
                per_bundle.add_metric([bundle, stage], *_buckets(histogram))
        detections = CounterMetricFamily("edge_detections", "Detections per bundle and label", labels=["bundle",
                                                                                                       "label"])
        for (bundle, label), count in sorted((self.labels.by_bundle if self.labels else {}).items()):
            detections.add_metric([bundle, label], count)
        sink_errors = CounterMetricFamily("edge_sink_errors", "Failed writes per sink", labels=["sink"])
        for sink, count in p.sinks.errors.items():
            sink_errors.add_metric([sink], count)
        calls = CounterMetricFamily("edge_inference_calls", "Inference calls by frames batched in the call",
                                    labels=["batch"])
        for size, count in sorted(p.batches.items()):
            calls.add_metric([str(size)], count)
        skipped = CounterMetricFamily("edge_inference_skipped", "Frames a bundle did not infer (interval, motion "
                                      "gating)", labels=["bundle", "reason"])
        for bundle, reasons in p.stats.skipped.items():
            for reason, count in list(reasons.items()):  # a copy: the dispatcher may add a reason meanwhile
                skipped.add_metric([bundle, reason], count)
        backend = InfoMetricFamily("edge_backend", "Inference backend and precision")
        backend.add_metric([], {"backend": p.workers[0].backend_names, "precision": p.workers[0].precisions,
                                "workers": str(len(p.workers)), "batch": str(p.batch)})
        build = InfoMetricFamily("edge_build", "The edge that runs, and its Python")
        build.add_metric([], {"version": __version__, "python": platform.python_version(),
                              "platform": f"{platform.system()} {platform.machine()}"})
        yield from (frames, dropped, reconnects, fps, up, depth, latency, per_bundle, detections, sink_errors, calls,
                    skipped, backend, build)
        if p.analytics is not None:
            yield from metric_families(p.analytics)


def _buckets(histogram: LatencyHistogram) -> tuple[list[tuple[str, int]], float]:
    """A latency histogram as Prometheus buckets (cumulative, +Inf last) and its sum of seconds."""
    counts = histogram.cumulative(list(BUCKETS))
    return [(f"{b:g}", c) for b, c in zip(BUCKETS, counts)] + [("+Inf", histogram.count)], histogram.total_s


def registry_for(pipeline: Pipeline, labels: LabelCounter | None = None) -> CollectorRegistry:
    """The daemon's own registry: the pipeline's metrics and the process's (CPU, memory, open files, start time:
    prometheus_client's process collector, ``process_*``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(pipeline, labels))
    ProcessCollector(registry=registry)
    return registry


def metrics_route(registry: CollectorRegistry):
    return lambda: (200, CONTENT_TYPE, generate_latest(registry))


def status(pipeline: Pipeline) -> dict[str, Any]:
    """Live numbers per stream, for ``/health`` (and, with more, the live page's ``/status.json``); with
    analytics, each stream's zones and lines (points as fractions of the frame, counters)."""
    streams = {"streams": {s.feed.name: {
        "state": s.feed.state.value, "frames": s.frames, "fps": round(s.fps, 2),
        "latency_ms": round(s.last_latency_s * 1e3, 1), "dropped": pipeline.queue.dropped[i],
        "reconnects": s.feed.reconnects, "queue": pipeline.queue.depth(i)}
        for i, s in enumerate(pipeline.stats.streams)}}
    return streams if pipeline.analytics is None else {**streams, "analytics": pipeline.analytics.status()}


def health(pipeline: Pipeline, stall_limit_s: float) -> tuple[int, dict[str, Any]]:
    """200 while the pipeline makes progress; 503 once it has been stuck for ``stall_limit_s``. A stream
    that is reconnecting is reported but is not a failure of the daemon: it is doing its job."""
    stalled = pipeline.stalled_s()
    ok = stalled < stall_limit_s
    return (200 if ok else 503), {"status": "ok" if ok else "stalled", "stalled_s": round(stalled, 3),
                                  **status(pipeline)}


class PerfLog:
    """A rate line per stream every ``every_s`` seconds, as DeepStream's ``**PERF`` lines are: one JSON log
    record (``msg`` "perf") with the stream's rate over the last interval and since the start, frames, drops,
    reconnects, state and the latest capture-to-result latency. :meth:`tick` runs in the dispatcher loop and
    costs a clock read when nothing is due."""

    def __init__(self, pipeline: Pipeline, every_s: float):
        self.pipeline, self.every_s = pipeline, every_s
        self._last = time.monotonic()
        self._frames = [0] * len(pipeline.stats.streams)

    def tick(self) -> None:
        now = time.monotonic()
        interval = now - self._last
        if interval < self.every_s:
            return
        p = self.pipeline
        running = max(now - p.started, 1e-9)
        for index, stats in enumerate(p.stats.streams):
            log.info("perf", extra={
                "stream": stats.feed.name, "fps": round((stats.frames - self._frames[index]) / interval, 2),
                "fps_avg": round(stats.frames / running, 2), "frames": stats.frames,
                "dropped": p.queue.dropped[index], "reconnects": stats.feed.reconnects,
                "state": stats.feed.state.value, "latency_ms": round(stats.last_latency_s * 1e3, 1)})
            self._frames[index] = stats.frames
        self._last = now

"""What the daemon tells the operator: Prometheus metrics, a health verdict and a status document.

Metrics are read from the pipeline's own counters and constant-memory latency histograms when Prometheus
scrapes (a custom collector on a registry of the daemon's own), so the frame loop pays nothing for them
and two daemons in one process (tests) never share metrics.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily

from edge.analytics.metrics import metric_families
from edge.pipeline import Pipeline
from streams.feed import StreamState

# Seconds: per-stage latency bucket bounds, from a fast preprocess (0.5 ms) to a stalled stream (10 s).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PipelineCollector:
    """A prometheus-client collector over a running :class:`Pipeline`."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def collect(self):
        p = self.pipeline
        frames = CounterMetricFamily("edge_frames", "Frames processed", labels=["stream"])
        dropped = CounterMetricFamily("edge_dropped_frames", "Frames dropped to stay real-time", labels=["stream"])
        reconnects = CounterMetricFamily("edge_reconnects", "Times a stream was reopened", labels=["stream"])
        fps = GaugeMetricFamily("edge_fps", "Frames processed per second, recent", labels=["stream"])
        up = GaugeMetricFamily("edge_stream_up", "1 while the stream delivers frames", labels=["stream"])
        latency = HistogramMetricFamily("edge_stage_latency_seconds", "Per-stage latency; end_to_end is capture "
                                        "to result", labels=["stream", "stage"])
        for index, stats in enumerate(p.stats.streams):
            name = stats.feed.name
            frames.add_metric([name], stats.frames)
            dropped.add_metric([name], p.queue.dropped[index])
            reconnects.add_metric([name], stats.feed.reconnects)
            fps.add_metric([name], stats.fps)
            up.add_metric([name], float(stats.feed.state is StreamState.STREAMING))
            for stage, histogram in stats.times.stages.items():
                counts = histogram.cumulative(list(BUCKETS))
                buckets = [(f"{b:g}", c) for b, c in zip(BUCKETS, counts)] + [("+Inf", histogram.count)]
                latency.add_metric([name, stage], buckets, histogram.total_s)
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
        yield from (frames, dropped, reconnects, fps, up, latency, sink_errors, calls, skipped, backend)
        if p.analytics is not None:
            yield from metric_families(p.analytics)


def registry_for(pipeline: Pipeline) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(pipeline))
    return registry


def metrics_route(registry: CollectorRegistry):
    return lambda: (200, CONTENT_TYPE, generate_latest(registry))


def status(pipeline: Pipeline) -> dict[str, Any]:
    """Live numbers per stream, for the preview page and ``/status.json``; with analytics, each stream's zones
    and lines (points as fractions of the frame, counters)."""
    streams = {"streams": {s.feed.name: {
        "state": s.feed.state.value, "frames": s.frames, "fps": round(s.fps, 2),
        "latency_ms": round(s.last_latency_s * 1e3, 1), "dropped": pipeline.queue.dropped[i],
        "reconnects": s.feed.reconnects} for i, s in enumerate(pipeline.stats.streams)}}
    return streams if pipeline.analytics is None else {**streams, "analytics": pipeline.analytics.status()}


def health(pipeline: Pipeline, stall_limit_s: float) -> tuple[int, dict[str, Any]]:
    """200 while the pipeline makes progress; 503 once it has been stuck for ``stall_limit_s``. A stream
    that is reconnecting is reported but is not a failure of the daemon: it is doing its job."""
    stalled = pipeline.stalled_s()
    ok = stalled < stall_limit_s
    return (200 if ok else 503), {"status": "ok" if ok else "stalled", "stalled_s": round(stalled, 3),
                                  **status(pipeline)}

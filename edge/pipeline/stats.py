"""The pipeline's statistics, kept in one place: per stream (counts, recent rate, stage latency histograms),
per bundle (its own stage latencies), and inference calls by batch size. The run's latencies are the
streams' histograms summed when asked, so each frame is recorded once.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from edge.metrics import StageTimes
from edge.schedule import FramePlan
from streams.base import Frame
from streams.feed import SourceFeed

SUMMARY_STAGES = ("decode", "preprocess", "infer", "postprocess", "end_to_end")


class StreamStats:
    """What the operator sees of one stream: counts, rate, latency histograms per stage."""

    def __init__(self, feed: SourceFeed):
        self.feed = feed
        self.frames = 0
        self.times = StageTimes()
        self.last_latency_s = 0.0
        self.size: tuple[int, int] | None = None  # width, height of the latest frame
        self._recent: deque[float] = deque(maxlen=30)

    @property
    def fps(self) -> float:
        if len(self._recent) < 2 or time.monotonic() - self._recent[-1] > 2.0:
            return 0.0
        return (len(self._recent) - 1) / max(self._recent[-1] - self._recent[0], 1e-9)

    def record(self, frame: Frame, timings: dict[str, float], now: float) -> None:
        latency = now - frame.captured
        self.frames += 1
        self.size = frame.image.shape[1], frame.image.shape[0]
        self.last_latency_s = latency
        self._recent.append(now)
        self.times.add("decode", frame.decode_s)
        for stage, seconds in timings.items():
            self.times.add(stage, seconds)
        self.times.add("end_to_end", latency)


class PipelineStats:
    """Every counter of a run. ``count_call`` is called by the inference workers (each its own counter, so
    they never contend); ``record`` by the dispatcher, once per frame delivered."""

    def __init__(self, feeds: Sequence[SourceFeed], bundles: Sequence[str], workers: int):
        self.streams = [StreamStats(feed) for feed in feeds]
        self.per_bundle = {name: StageTimes() for name in bundles}
        self.skipped: dict[str, Counter[str]] = {name: Counter() for name in bundles}  # frames not inferred, by why
        self._calls: list[Counter[int]] = [Counter() for _ in range(workers)]  # per worker: calls by size

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.streams)

    def restart_times(self) -> None:
        """Empties the latency histograms (counts stay): ``edge bench`` measures after its warm-up only."""
        for stream in self.streams:
            stream.times = StageTimes()
        self.per_bundle = {name: StageTimes() for name in self.per_bundle}

    @property
    def batches(self) -> Counter[int]:
        """Inference calls by the number of frames they ran."""
        return sum(self._calls, Counter())

    def count_call(self, worker: int, frames: int) -> None:
        self._calls[worker][frames] += 1

    def record(self, frame: Frame, by_bundle: dict[str, dict[str, float]], now: float,
               plan: FramePlan | None = None) -> None:
        """One delivered frame: its stage seconds per bundle (those that ran on it), summed per stage for its
        stream; the bundles its plan skipped, by reason."""
        if plan is not None:
            for name, reason in plan.skipped.items():
                self.skipped[name][reason.value] += 1
        for name, stages in by_bundle.items():
            times = self.per_bundle[name]
            for stage, seconds in stages.items():
                times.add(stage, seconds)
            times.add("total", sum(stages.values()))
        totals: Counter[str] = Counter()
        for stages in by_bundle.values():
            totals.update(stages)
        self.streams[frame.source].record(frame, dict(totals), now)

    def latency_ms(self) -> dict[str, dict[str, float]]:
        """The run's p50/p99 per summary stage, over every stream."""
        latency = StageTimes.combined(s.times for s in self.streams).summary()
        return {stage: latency[stage] for stage in SUMMARY_STAGES if stage in latency}

    def per_bundle_summary(self) -> dict[str, Any]:
        """Each bundle's stage latencies and the frame rate it would sustain alone (its stages only, no decode)."""
        summary = {}
        for name, times in self.per_bundle.items():
            total = times.stages.get("total")
            fps = round(total.count / total.total_s, 2) if total is not None and total.total_s > 0 else 0.0
            summary[name] = {"fps": fps, "latency_ms": times.summary()}
            if self.skipped[name]:
                summary[name]["inferred_frames"] = total.count if total is not None else 0
                summary[name]["skipped_frames"] = dict(sorted(self.skipped[name].items()))
        return summary

    def batch_summary(self, size: int) -> dict[str, Any]:
        """The batch size asked for and the sizes run: frames per inference call on average, calls by size."""
        calls = self.batches
        count = sum(calls.values())
        mean = sum(n * c for n, c in calls.items()) / count if count else 0.0
        return {"size": size, "mean": round(mean, 3), "calls": {str(n): calls[n] for n in sorted(calls)}}

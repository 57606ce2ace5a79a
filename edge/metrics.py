"""Latency statistics in constant memory, so a daemon that runs for weeks can report them too.

Samples land in log-spaced bins (2 % wide, 1 µs to 1000 s); percentiles are read off the cumulative
counts, accurate to the bin width. The same bins can later be exposed as a Prometheus histogram.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

_MIN_S = 1e-6
_GROWTH = 1.02
_BINS = math.ceil(math.log(1e9) / math.log(_GROWTH)) + 1


class LatencyHistogram:
    """Durations in seconds → count, mean and percentiles in milliseconds."""

    def __init__(self) -> None:
        self.counts = np.zeros(_BINS, np.int64)
        self.total_s = 0.0

    def add(self, seconds: float) -> None:
        index = 0 if seconds <= _MIN_S else min(_BINS - 1, int(math.log(seconds / _MIN_S) / math.log(_GROWTH)) + 1)
        self.counts[index] += 1
        self.total_s += seconds

    def absorb(self, other: LatencyHistogram) -> None:
        """Adds ``other``'s samples (same bins), so per-stream histograms sum to the run's."""
        self.counts += other.counts
        self.total_s += other.total_s

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile (0–100) in ms, as the geometric centre of its bin."""
        n = self.count
        if n == 0:
            return 0.0
        index = int(np.searchsorted(np.cumsum(self.counts), max(1, math.ceil(q / 100 * n))))
        if index == 0:
            return _MIN_S * 1e3
        return _MIN_S * _GROWTH ** (index - 0.5) * 1e3

    def summary(self) -> dict[str, float]:
        return {"p50": round(self.percentile_ms(50), 3), "p99": round(self.percentile_ms(99), 3)}

    def bins_ms(self) -> tuple[np.ndarray, np.ndarray]:
        """The occupied range of bins as (edges [K + 1] in ms, counts [K]): what a histogram chart draws."""
        occupied = np.flatnonzero(self.counts)
        if len(occupied) == 0:
            return np.zeros(0), np.zeros(0, np.int64)
        first, last = max(1, int(occupied[0])), int(occupied[-1])  # bin 0 (≤ 1 µs) drawn as bin 1
        edges = _MIN_S * _GROWTH ** (np.arange(first - 1, last + 1, dtype=np.float64)) * 1e3
        counts = self.counts[first:last + 1].copy()
        counts[0] += self.counts[:first].sum()
        return edges, counts

    def cumulative(self, bounds_s: list[float]) -> list[int]:
        """Samples at or below each bound (to the bin width): the buckets of a Prometheus histogram."""
        cumulative = np.cumsum(self.counts)
        # Bin i > 0 holds samples in [_MIN_S·g^(i-1), _MIN_S·g^i); bin 0 those up to _MIN_S.
        last_bins = [min(_BINS - 1, max(0, math.floor(math.log(b / _MIN_S) / math.log(_GROWTH)))) for b in bounds_s]
        return [int(cumulative[i]) for i in last_bins]


class StageTimes:
    """One histogram per pipeline stage, in the order stages were first seen."""

    def __init__(self) -> None:
        self.stages: dict[str, LatencyHistogram] = {}

    def add(self, stage: str, seconds: float) -> None:
        self._histogram(stage).add(seconds)

    def _histogram(self, stage: str) -> LatencyHistogram:
        histogram = self.stages.get(stage)
        if histogram is None:
            histogram = self.stages[stage] = LatencyHistogram()
        return histogram

    @classmethod
    def combined(cls, parts: Iterable[StageTimes]) -> StageTimes:
        """The stages of all ``parts`` together, as if every sample had been added to one."""
        total = cls()
        for part in parts:
            for stage, histogram in part.stages.items():
                total._histogram(stage).absorb(histogram)
        return total

    def summary(self) -> dict[str, dict[str, float]]:
        return {stage: h.summary() for stage, h in self.stages.items()}

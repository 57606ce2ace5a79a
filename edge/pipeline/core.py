"""The one pipeline under both ``edge replay`` and ``edge run``: sources → inference → tracking → sinks.

Stages and what joins them::

    feed thread per source ──► FrameBoard ──► N inference workers ──► done queue ──► dispatcher
    (decode in the thread or      (per-source     (threads; each its own   (main thread: puts results back
     in a child process through    queues, drop    ModelSet, so preprocess,  in take order, tracks, draws,
     shared memory; reopen with    policy)         infer and decode of two   writes the sinks, keeps stats)
     backoff)                                      frames overlap)

Where the models take a batch (``ModelSet.batch`` > 1: a dynamic batch dimension and several streams), a
worker takes the frames waiting on the board, one per stream, and runs them in one inference call;
``batches`` counts the calls by size. One frame is the degenerate batch of the same code.

Inference never waits for I/O that could overlap it: decoding runs ahead in the feeds and sinks run in the
dispatcher while the workers infer the next frames. ONNX Runtime, OpenCV and NumPy release the GIL in
their heavy calls, so worker threads run in parallel. At most ``workers × batch + 2`` frames are between the board
and the end of the sinks (a semaphore), so a slow sink holds back inference, and through the board's
drop policy a live stream drops rather than queues: the wait from capture to result stays bounded.

Sinks are isolated: one whose ``critical`` is false (network outputs) is logged and counted when it fails
and the run goes on; a critical one (events file, video file) ends the run, as a full disk should.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.metrics import StageTimes
from edge.model import STAGES, ModelSet
from edge.results import Detections
from edge.tracker import ByteTracker
from streams.board import FrameBoard
from streams.feed import Backoff, DecodeMode, SourceFeed, SourceSpec
from streams.sources import Frame, SourceError

log = logging.getLogger("edge.pipeline")
SUMMARY_STAGES = ("decode", "preprocess", "infer", "postprocess", "end_to_end")
_WAIT_S = 0.25


@dataclass
class Processed:
    """One frame through the models, as sinks see it. ``event`` is the contract's event line."""

    frame: Frame
    results: dict[str, Any]
    event: dict[str, Any]
    models: ModelSet
    fps: float
    _annotated: bool = field(default=False, repr=False)

    def annotated(self) -> np.ndarray:
        """The frame with results drawn on it, drawn once however many sinks ask."""
        if not self._annotated:
            self.models.draw(self.frame.image, self.results)
            self._annotated = True
        return self.frame.image


class Sink(Protocol):
    critical: bool

    def write(self, item: Processed) -> None: ...

    def close(self) -> None: ...


class StreamStats:
    """What the operator sees of one stream: counts, rate, latency histograms per stage."""

    def __init__(self, feed: SourceFeed):
        self.feed = feed
        self.frames = 0
        self.times = StageTimes()
        self.last_latency_s = 0.0
        self._recent: deque[float] = deque(maxlen=30)

    @property
    def fps(self) -> float:
        if len(self._recent) < 2 or time.monotonic() - self._recent[-1] > 2.0:
            return 0.0
        return (len(self._recent) - 1) / max(self._recent[-1] - self._recent[0], 1e-9)

    def record(self, frame: Frame, timings: dict[str, float], now: float) -> float:
        latency = now - frame.captured
        self.frames += 1
        self.last_latency_s = latency
        self._recent.append(now)
        self.times.add("decode", frame.decode_s)
        for stage, seconds in timings.items():
            self.times.add(stage, seconds)
        self.times.add("end_to_end", latency)
        return latency


class Pipeline:
    """Runs ``specs`` through one ModelSet per worker into ``sinks`` until the sources end or :meth:`stop`."""

    def __init__(self, specs: Sequence[SourceSpec], workers: Sequence[ModelSet], sinks: Sequence[Sink], *,
                 decode: DecodeMode = DecodeMode.THREAD, track: bool = False, backoff: Backoff | None = None):
        self.stopping = threading.Event()
        self.board = FrameBoard([s.policy for s in specs])
        self.feeds = [SourceFeed(s, self.board, self.stopping, decode, backoff or Backoff()) for s in specs]
        self.workers = list(workers)
        self.sinks = list(sinks)
        self.stats = [StreamStats(feed) for feed in self.feeds]
        self.times = StageTimes()
        self.per_bundle = {m.name: StageTimes() for m in self.workers[0].models}
        self.trackers: dict[tuple[int, str], ByteTracker] | None = {} if track else None
        self.sink_errors: dict[str, int] = {}
        self.errors: list[BaseException] = []
        self.started = time.monotonic()
        self.heartbeat = self.started
        self._done: queue.Queue = queue.Queue()
        self.batch = self.workers[0].batch
        self._room = threading.Semaphore(len(self.workers) * self.batch + 2)
        self._busy_since: list[float | None] = [None] * len(self.workers)
        self._batches: list[Counter[int]] = [Counter() for _ in self.workers]  # per worker: calls by size

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.stats)

    @property
    def dropped(self) -> int:
        return sum(self.board.dropped)

    @property
    def batches(self) -> Counter[int]:
        """Inference calls by the number of frames they ran."""
        return sum(self._batches, Counter())

    def stop(self) -> None:
        """Stop reading; what is already decoded is still processed, then :meth:`run` returns."""
        self.stopping.set()

    def stalled_s(self) -> float:
        """How long the pipeline has made no progress: the dispatcher's last turn or the oldest busy worker."""
        now = time.monotonic()
        busy = [now - t for t in self._busy_since if t is not None]
        return max([now - self.heartbeat, *busy])

    def run(self, on_tick: Callable[[], None] | None = None) -> None:
        """Blocks until every source ended (or :meth:`stop` and the drain); raises the first worker or
        critical-sink error. Feed errors of sources that do not reconnect are in ``feed.error``."""
        self.started = time.monotonic()
        for feed in self.feeds:
            feed.start()
        threads = [threading.Thread(target=self._infer, args=(n,), name=f"infer-{n}", daemon=True)
                   for n in range(len(self.workers))]
        for thread in threads:
            thread.start()
        try:
            self._dispatch(threads, on_tick)
        finally:
            self.stop()
            for thread in threads:
                thread.join()
            for feed in self.feeds:
                feed.join()
        if self.errors:
            raise self.errors[0]

    def _infer(self, worker: int) -> None:
        models = self.workers[worker]
        while True:
            taken = self._take(models.batch)
            if not taken:
                if self.board.exhausted:
                    return
                continue
            self._busy_since[worker] = time.monotonic()
            try:
                results = models.run([frame.image for _, frame in taken])
                # Each frame is charged its share of the call: stage sums stay the time really spent.
                share = {name: {stage: seconds / len(taken) for stage, seconds in stages.items()}
                         for name, stages in models.timings_by_model.items()}
                self._batches[worker][len(taken)] += 1
                for (order, frame), result in zip(taken, results):
                    self._done.put((order, frame, result, share))
            except Exception as e:  # handed to the dispatcher, which fails the run in frame order
                for order, frame in taken:
                    self._done.put((order, frame, e, None))
            finally:
                self._busy_since[worker] = None

    def _take(self, most: int) -> list[tuple[int, Frame]]:
        """Up to ``most`` waiting frames (one per stream), each holding a place in flight; empty if none came."""
        if not self._room.acquire(timeout=_WAIT_S):
            return []
        places = 1
        while places < most and self._room.acquire(blocking=False):
            places += 1
        taken = self.board.take(_WAIT_S, places)
        for _ in range(places - len(taken)):
            self._room.release()
        return taken

    def _dispatch(self, threads: list[threading.Thread], on_tick: Callable[[], None] | None) -> None:
        waiting: list[tuple[int, int, Frame, Any, Any]] = []
        next_order, tie = 0, 0
        while True:
            self.heartbeat = time.monotonic()
            if on_tick is not None:
                on_tick()
            try:
                order, frame, results, by_model = self._done.get(timeout=_WAIT_S)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and self._done.empty():
                    return
                continue
            tie += 1
            heapq.heappush(waiting, (order, tie, frame, results, by_model))
            while waiting and waiting[0][0] == next_order:
                _, _, frame, results, by_model = heapq.heappop(waiting)
                next_order += 1
                try:
                    if isinstance(results, BaseException):
                        raise results
                    if not self.errors:
                        self._deliver(frame, results, by_model)
                except Exception as e:
                    self.errors.append(e)
                    self.stop()
                finally:
                    self._room.release()

    def _deliver(self, frame: Frame, results: dict[str, Any], by_model: dict[str, dict[str, float]]) -> None:
        models = self.workers[0]
        if self.trackers is not None:
            self._track(frame.source, results)
        event = {"stream": frame.stream, "frame": frame.index, "pts": round(frame.pts, 6),
                 "results": models.to_events(results)}
        item = Processed(frame, results, event, models, self.feeds[frame.source].fps)
        for sink in self.sinks:
            if sink.critical:
                sink.write(item)
                continue
            try:
                sink.write(item)
            except Exception as e:  # a network output must not stop the others
                name = type(sink).__name__
                self.sink_errors[name] = self.sink_errors.get(name, 0) + 1
                if self.sink_errors[name] in (1, 10, 100) or self.sink_errors[name] % 1000 == 0:
                    log.warning("sink failed", extra={"sink": name, "error": str(e), "count": self.sink_errors[name]})
        timings = {stage: sum(t[stage] for t in by_model.values()) for stage in STAGES}
        for name, stages in by_model.items():
            for stage, seconds in stages.items():
                self.per_bundle[name].add(stage, seconds)
            self.per_bundle[name].add("total", sum(stages.values()))
        now = time.monotonic()
        self.stats[frame.source].record(frame, timings, now)
        self.times.add("decode", frame.decode_s)
        for stage, seconds in timings.items():
            self.times.add(stage, seconds)
        self.times.add("end_to_end", now - frame.captured)

    def _track(self, source: int, results: dict[str, Any]) -> None:
        for name, result in results.items():
            if isinstance(result, Detections):
                tracker = self.trackers.setdefault((source, name), ByteTracker())
                tracker.update(result)

    def close_sinks(self) -> None:
        """Closes every sink (finalising video files, flushing events) even if one fails; raises the first."""
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:
                first = first or e
        if first is not None:
            raise first

    def source_errors(self) -> list[SourceError]:
        return [feed.error for feed in self.feeds if feed.error is not None]

    def summary(self) -> dict[str, Any]:
        """The contract's summary fields, plus per-stream counts."""
        wall = time.monotonic() - self.started
        models = self.workers[0]
        latency = self.times.summary()
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "wall_s": round(wall, 3),
            "fps": round(self.frames / wall, 2) if wall > 0 else 0.0,
            "backend": models.backend_names,
            "precision": models.precisions,
            "batch": _batch_summary(self.batch, self.batches),
            "latency_ms": {stage: latency[stage] for stage in SUMMARY_STAGES if stage in latency},
            "decoded_frames": sum(feed.frames for feed in self.feeds),
            "per_bundle": {name: _bundle_summary(times) for name, times in self.per_bundle.items()},
            "streams": {s.feed.name: {"frames": s.frames, "dropped": self.board.dropped[i],
                                      "reconnects": s.feed.reconnects, "state": s.feed.state.value}
                        for i, s in enumerate(self.stats)},
        }


def _batch_summary(size: int, calls: Counter[int]) -> dict[str, Any]:
    """The batch size asked for and the sizes run: frames per inference call on average, calls by size."""
    count = sum(calls.values())
    mean = sum(n * c for n, c in calls.items()) / count if count else 0.0
    return {"size": size, "mean": round(mean, 3), "calls": {str(n): calls[n] for n in sorted(calls)}}


def _bundle_summary(times: StageTimes) -> dict[str, Any]:
    """One bundle's stage latencies and the frame rate it would sustain alone (its stages only, no decode)."""
    total = times.stages.get("total")
    fps = round(total.count / total.total_s, 2) if total is not None and total.total_s > 0 else 0.0
    return {"fps": fps, "latency_ms": times.summary()}


def make_workers(bundles: Sequence[Any], backend: str = "auto", threads: int | None = None,
                 workers: int | None = None, *, batch: int = 1, allow_build: bool = True) -> list[ModelSet]:
    """One ModelSet per inference worker, each with its own sessions and buffers so they never contend. By
    default two workers share the CPUs between them: ONNX Runtime scales poorly past one thread on a small
    model (YOLOX-nano on the issue's reference machine: 13.3 ms on 1 thread, 8.9 ms on 2), so two sessions
    fed in parallel do more frames per second than one two-thread session. On a 2-core VM the two layouts
    measured within noise of each other (see the issue note); ``--workers 1 --threads 2`` selects the other.
    ``batch``: frames of several streams per inference call, where the bundles' batch dimension allows."""
    from edge.backends.onnxruntime import usable_cpus

    cpus = usable_cpus()
    count = workers or (2 if cpus >= 2 else 1)
    per_worker = threads or max(1, cpus // count)
    model_sets: list[ModelSet] = []
    try:
        for _ in range(count):
            model_sets.append(ModelSet(bundles, backend, per_worker, batch=batch, allow_build=allow_build))
    except BaseException:
        for model_set in model_sets:
            model_set.close()
        raise
    return model_sets

"""The scheduler: feeds → frame queue → inference workers → reorder → dispatch to the sinks.

Stages and what joins them::

    feed thread per source ──► FrameQueue ──► N inference workers ──► done queue ──► dispatcher
    (decode in the thread or      (per-source     (threads; each its own   (main thread: puts results back
     in a child process through    queues, drop    RunnerGraph, so          in take order, tracks, hands each
     shared memory; reopen with    policy)         preprocess, infer and    frame to the sinks, records the
     backoff)                                      decode of two frames     statistics)
                                                   overlap)

Where the bundles take a batch (``RunnerGraph.batch`` > 1: a dynamic batch dimension and several streams), a
worker takes the frames waiting in the queue, one per stream, and runs them in one inference call;
``batches`` counts the calls by size. One frame is the degenerate batch of the same code.

Inference never waits for I/O that could overlap it: decoding runs ahead in the feeds and sinks run in the
dispatcher while the workers infer the next frames. ONNX Runtime, OpenCV and NumPy release the GIL in
their heavy calls, so worker threads run in parallel. At most ``workers × batch + 2`` frames are between the
queue and the end of the sinks (a semaphore), so a slow sink holds back inference, and through the queue's
drop policy a live stream drops rather than queues: the wait from capture to result stays bounded.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from edge.analytics.stage import AnalyticsStage
from edge.annotate import Annotator
from edge.graph import RunnerGraph
from edge.pipeline.messages import Annotate, FrameResult, Inferred
from edge.pipeline.sinks import Sink, SinkSet
from edge.pipeline.stats import PipelineStats
from edge.pipeline.tracking import TrackStage
from edge.schedule import FramePlan, InferenceSchedule
from streams.base import SourceError
from streams.feed import Backoff, DecodeMode, SourceFeed, SourceSpec
from streams.frame_queue import FrameQueue, Taken

_WAIT_S = 0.25
# How long a stopped run waits for a feed still blocked in a read (a network read times out before that).
FEED_JOIN_S = 10.0
log = logging.getLogger("edge.pipeline")


class Pipeline:
    """Runs ``specs`` through one RunnerGraph per worker into ``sinks`` until the sources end or :meth:`stop`.

    ``track`` gives detections ``track_id``s (one ByteTrack per stream and bundle); the commands take it
    from :class:`edge.config.RunConfig`, where it is on by default. ``schedule`` says which bundles infer on
    each frame (``interval``, motion gating; default: all on every frame); ``analytics`` runs zones and
    lines on the tracked results before the sinks.
    """

    def __init__(self, specs: Sequence[SourceSpec], workers: Sequence[RunnerGraph], sinks: Sequence[Sink], *,
                 decode: DecodeMode = DecodeMode.THREAD, track: bool = False, backoff: Backoff | None = None,
                 schedule: InferenceSchedule | None = None, analytics: AnalyticsStage | None = None):
        self.stopping = threading.Event()
        self._abandoned = threading.Event()
        self.queue = FrameQueue([s.policy for s in specs])
        self.feeds = [SourceFeed(s, self.queue, self.stopping, decode, backoff or Backoff()) for s in specs]
        self.workers = list(workers)
        self.sinks = SinkSet(sinks)
        self.labels = self.workers[0].labels
        self.stats = PipelineStats(self.feeds, list(self.labels), len(self.workers))
        # How frames get their results drawn for the sinks that show them: on a copy, once per frame, in buffers
        # kept from frame to frame (the dispatcher thread alone draws; a picture is valid until the next frame's).
        self.annotate: Annotate = Annotator().draw
        self.tracking = TrackStage(track, self.workers[0].croppable)
        self.schedule = schedule if schedule is not None and schedule.active else None
        self._planning = threading.Lock()  # plans are made in take order: a stream's frames one after another
        self.analytics = analytics
        self.errors: list[BaseException] = []
        self.started = time.monotonic()
        self.heartbeat = self.started
        self._done: queue.Queue[Inferred] = queue.Queue()
        self.batch = self.workers[0].batch
        self._room = threading.Semaphore(len(self.workers) * self.batch + 2)
        self._busy_since: list[float | None] = [None] * len(self.workers)

    @property
    def frames(self) -> int:
        return self.stats.frames

    @property
    def dropped(self) -> int:
        return sum(self.queue.dropped)

    @property
    def batches(self) -> Counter[int]:
        """Inference calls by the number of frames they ran."""
        return self.stats.batches

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
        except BaseException:
            self._abandoned.set()  # no one gives room back any more: the workers must not wait for it
            raise
        finally:
            self.stop()
            for thread in threads:
                thread.join()
            for feed in self.feeds:
                feed.join(FEED_JOIN_S)
                if feed.alive:
                    log.warning("stream did not stop; left behind", extra={"stream": feed.name})
        if self.errors:
            raise self.errors[0]

    def _infer(self, worker: int) -> None:
        graph = self.workers[worker]
        while True:
            taken = self._take(graph.batch)
            if not taken:
                # Stopping, what was decoded is processed, not what a source still blocked in a read may bring.
                if self.queue.exhausted or self._abandoned.is_set() or (self.stopping.is_set() and self.queue.idle):
                    return
                continue
            self._busy_since[worker] = time.monotonic()
            try:
                images = [t.frame.image for t, _ in taken]
                if self.schedule is None:
                    results = graph.run(images)
                else:
                    results = graph.run(images, [p.run for _, p in taken], [p.region for _, p in taken])
                # Each frame a bundle ran on is charged its share of the call: stage sums stay the time spent.
                share = {name: {stage: seconds / max(graph.ran[name], 1) for stage, seconds in stages.items()}
                         for name, stages in graph.timings_by_model.items()}
                inferred = sum(1 for result in results if result)  # a frame no bundle ran on made no call
                if inferred:
                    self.stats.count_call(worker, inferred)
                for (t, plan), result in zip(taken, results):
                    self._done.put(Inferred(t.order, t.frame, result, {k: share[k] for k in result}, plan=plan))
            except Exception as e:  # handed to the dispatcher, which fails the run in frame order
                for t, _ in taken:
                    self._done.put(Inferred(t.order, t.frame, {}, {}, e))
            finally:
                self._busy_since[worker] = None

    def _take(self, most: int) -> list[tuple[Taken, FramePlan | None]]:
        """Up to ``most`` waiting frames (one per stream), each holding a place in flight, with its plan; empty
        if none came."""
        if not self._room.acquire(timeout=_WAIT_S):
            return []
        places = 1
        while places < most and self._room.acquire(blocking=False):
            places += 1
        if self.schedule is None:
            taken = [(t, None) for t in self.queue.take(_WAIT_S, places)]
        else:
            with self._planning:
                taken = [(t, self.schedule.plan(t.frame)) for t in self.queue.take(_WAIT_S, places)]
        for _ in range(places - len(taken)):
            self._room.release()
        return taken

    def _dispatch(self, threads: list[threading.Thread], on_tick: Callable[[], None] | None) -> None:
        waiting: list[Inferred] = []  # a heap by take order (orders are unique)
        next_order = 0
        while True:
            self.heartbeat = time.monotonic()
            if on_tick is not None:
                on_tick()
            try:
                heapq.heappush(waiting, self._done.get(timeout=_WAIT_S))
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and self._done.empty():
                    return
                continue
            while waiting and waiting[0].order == next_order:
                done = heapq.heappop(waiting)
                next_order += 1
                try:
                    if done.error is not None:
                        raise done.error
                    if not self.errors:
                        self._deliver(done)
                except Exception as e:
                    self.errors.append(e)
                    self.stop()
                finally:
                    self._room.release()

    def _deliver(self, done: Inferred) -> None:
        frame = done.frame
        carried = self.tracking.apply(frame.source, list(self.labels), done.results, done.plan)
        analytics = self.analytics.apply(frame, done.results) if self.analytics is not None else None
        self.sinks.write(FrameResult(frame, done.results, self.labels, self.feeds[frame.source].fps, self.annotate,
                                     carried=carried, analytics=analytics))
        self.stats.record(frame, done.timings, time.monotonic(), done.plan)

    def close_sinks(self) -> None:
        """Closes every sink (finalising video files, flushing events) even if one fails; raises the first."""
        self.sinks.close()

    def source_errors(self) -> list[SourceError]:
        return [feed.error for feed in self.feeds if feed.error is not None]

    def summary(self) -> dict[str, Any]:
        """The contract's summary fields, plus per-stream counts."""
        wall = time.monotonic() - self.started
        graph = self.workers[0]
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "wall_s": round(wall, 3),
            "fps": round(self.frames / wall, 2) if wall > 0 else 0.0,
            "backend": graph.backend_names,
            "precision": graph.precisions,
            "batch": self.stats.batch_summary(self.batch),
            "latency_ms": self.stats.latency_ms(),
            "decoded_frames": sum(feed.frames for feed in self.feeds),
            "per_bundle": self.stats.per_bundle_summary(),
            "streams": {s.feed.name: {"frames": s.frames, "dropped": self.queue.dropped[i],
                                      "reconnects": s.feed.reconnects, "state": s.feed.state.value}
                        for i, s in enumerate(self.stats.streams)},
            **({"analytics": self.analytics.summary()} if self.analytics is not None else {}),
        }

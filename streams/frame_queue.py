"""The handover between decoders and inference: a queue of frames per source with a drop policy, under one lock.

Two drop policies, named as roboflow's ``BufferFillingStrategy`` names them:

- ``LOSSLESS`` (replay): a full queue stalls its decoder, so every frame is processed once, in order.
- ``LATEST`` (live): a new frame pushes out the oldest waiting one, which is counted as dropped. A live
  camera produces frames whether or not we keep up; queueing them would make every result later than the
  last, so the wait from capture to inference is bounded by one queue's worth of frames, however slow
  the model is.

``take`` hands out frames round-robin over the sources, so a fast camera cannot starve a slow one, and
numbers them in the order taken, so results can be put back in that order after parallel inference. It
may hand out several at once for one batched inference call, at most one per source: each stream's
oldest waiting frame, which for a live stream is its latest, so batching never serves a stale frame.
"""

from __future__ import annotations

import threading
from collections import deque
from enum import Enum
from typing import NamedTuple

from streams.base import Frame


class DropPolicy(str, Enum):
    LOSSLESS = "lossless"
    LATEST = "latest"


# Frames that may wait per source: one for live (the freshest), a few for replay (to absorb decode jitter).
CAPACITY = {DropPolicy.LOSSLESS: 4, DropPolicy.LATEST: 1}


class Taken(NamedTuple):
    """A frame handed to inference, numbered in take order so results can be put back in that order."""

    order: int
    frame: Frame


class FrameQueue:
    """Bounded per-source queues with one condition variable; each source's :class:`DropPolicy` says what a
    full queue does."""

    def __init__(self, policies: list[DropPolicy]):
        self.policies = policies
        self.dropped = [0] * len(policies)
        self._queues: list[deque[Frame]] = [deque() for _ in policies]
        self._open = [True] * len(policies)
        self._condition = threading.Condition()
        self._next_source = 0
        self._taken = 0

    def put(self, frame: Frame, stop: threading.Event) -> None:
        """Queues a frame of source ``frame.source`` by that source's policy (waits while full if lossless)."""
        source = frame.source
        with self._condition:
            queue = self._queues[source]
            policy = self.policies[source]
            if policy is DropPolicy.LATEST:
                while len(queue) >= CAPACITY[policy]:
                    queue.popleft()
                    self.dropped[source] += 1
            else:
                while len(queue) >= CAPACITY[policy] and not stop.is_set():
                    self._condition.wait(0.1)
            queue.append(frame)
            self._condition.notify_all()

    def depth(self, source: int) -> int:
        """Frames of ``source`` waiting now (a read without the lock: a gauge, not a decision)."""
        return len(self._queues[source])

    def add_dropped(self, source: int, count: int) -> None:
        """Counts frames a decoder dropped before they reached the queue."""
        with self._condition:
            self.dropped[source] += count

    def close(self, source: int) -> None:
        """No more frames will come from ``source``; what is queued is still handed out."""
        with self._condition:
            self._open[source] = False
            self._condition.notify_all()

    @property
    def exhausted(self) -> bool:
        """Every source closed and every frame taken."""
        with self._condition:
            return not any(self._open) and not any(self._queues)

    @property
    def idle(self) -> bool:
        """No frame waiting (sources may still be open)."""
        with self._condition:
            return not any(self._queues)

    def take(self, timeout: float, most: int = 1) -> list[Taken]:
        """Up to ``most`` frames, from as many sources, with their take-order numbers; waits up to ``timeout`` s
        for the first. Empty after the timeout or once exhausted."""
        with self._condition:
            if not self._condition.wait_for(lambda: any(self._queues) or not any(self._open), timeout):
                return []
            taken: list[Taken] = []
            count = len(self._queues)
            for step in range(count):
                source = (self._next_source + step) % count
                if self._queues[source] and len(taken) < most:
                    taken.append(Taken(self._taken, self._queues[source].popleft()))
                    self._taken += 1
                    self._next_source = source + 1
            if taken:
                self._condition.notify_all()  # a lossless decoder may be waiting for room
            return taken

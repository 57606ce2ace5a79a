"""Decode ahead in a thread, so that decoding the next frame overlaps work on this one.

OpenCV releases the GIL while it decodes, so a thread is enough to overlap decode with inference
(ONNX Runtime also releases it). The queue is bounded: a slow consumer stalls decoding instead of
letting frames pile up in memory, and nothing is dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher(Generic[T]):
    """Iterates ``items`` in a background thread, ``depth`` items ahead; re-raises its errors in order."""

    def __init__(self, items: Iterable[T], depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), name="prefetch", daemon=True)
        self._thread.start()

    def _produce(self, items: Iterable[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as e:  # handed to the consumer, which re-raises it where it would have happened
            self._put(_Failure(e))
            return
        self._put(_DONE)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stops the producer thread and waits for it."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

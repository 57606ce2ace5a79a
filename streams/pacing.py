"""Pacing: hand recorded frames on at the rate their timestamps say, for ``--realtime`` replay and for
files played as if they were a camera."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator

from streams.base import Frame


class RealtimePacer:
    """Sleeps until a frame's ``pts`` is due, measured from the first frame. Never drops: if processing
    falls behind, frames are handed on at once and the replay catches up as it can."""

    def __init__(self) -> None:
        self._origin: float | None = None

    def wait(self, pts: float) -> None:
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - pts
        delay = self._origin + pts - now
        if delay > 0:
            time.sleep(delay)


def paced(frames: Iterable[Frame]) -> Iterator[Frame]:
    """Frames at their own rate. Each is stamped as captured when it falls due, as a camera's frame would be,
    so capture-to-result latency does not count the time spent waiting for the frame's turn."""
    pacer = RealtimePacer()
    for frame in frames:
        pacer.wait(frame.pts)
        yield dataclasses.replace(frame, captured=time.monotonic())

"""Pacing for ``--realtime`` replay: hand frames on at the rate their timestamps say."""

from __future__ import annotations

import time


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

"""The annotated picture of each frame, drawn on a copy so the frame itself stays as the camera gave it.

An :class:`Annotator` belongs to one output (a video file, the preview): it owns the copy and every
scratch buffer drawing needs, reused frame after frame and reallocated only when the frame size changes,
so annotating allocates nothing per frame. With ``overlay`` it adds the rate it is drawing at and the
frame's wall-clock time, bottom left, as jetson-inference's and DeepStream's demos do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from edge.canvas import BOTTOM_LEFT, Canvas
from edge.draw import paint
from edge.palette import BLACK, Label

RATE_SMOOTHING = 0.1  # weight of the newest interval in the overlay's frame rate (about the last 10 frames)


class Annotator:
    """Draws results on a copy of each frame. Not thread-safe: one per thread that draws."""

    def __init__(self, *, overlay: bool = False):
        self.overlay = overlay
        self._canvas = Canvas()
        self._frame = np.zeros((0, 0, 3), np.uint8)
        self._last_call: float | None = None
        self._interval: float | None = None

    def draw(self, image: np.ndarray, results: Sequence[tuple[object, Label]], *,
             when: float | None = None) -> np.ndarray:
        """``image`` with ``results`` (``(result, label)`` per bundle) drawn on it; ``image`` is not modified.
        The returned array belongs to the annotator and is overwritten by its next call. ``when``: the
        frame's wall-clock time for the overlay (default: now)."""
        if self._frame.shape != image.shape or self._frame.dtype != image.dtype:
            self._frame = np.empty_like(image)
        np.copyto(self._frame, image)
        self._canvas.begin(self._frame)
        paint(self._canvas, results)
        self._tick()
        if self.overlay:
            self._canvas.panel([(self._overlay_text(time.time() if when is None else when), BLACK)], BOTTOM_LEFT)
        self._canvas.finish()
        return self._frame

    @property
    def placed(self) -> np.ndarray:
        """[K, 4] rectangles of the captions and panels on the last picture (x0, y0, x1, y1)."""
        return self._canvas.placed

    def _tick(self) -> None:
        now = time.monotonic()
        if self._last_call is not None:
            interval = now - self._last_call
            self._interval = interval if self._interval is None else (
                (1 - RATE_SMOOTHING) * self._interval + RATE_SMOOTHING * interval)
        self._last_call = now

    def _overlay_text(self, when: float) -> str:
        clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
        if not self._interval:
            return clock
        return f"{1 / self._interval:.1f} fps  {clock}"

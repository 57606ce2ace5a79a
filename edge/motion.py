"""Motion detection for inference gating: is anything moving in this frame, and where?

A cheap stage before the models, as Frigate runs one: the frame shrunk to a small grey picture, blurred, and
compared with a running average of the recent ones (``cv2.accumulateWeighted``); pixels that differ by more
than ``threshold`` grey levels are motion. A frame moves when at least ``min_area`` of its pixels do; the
bounding box of those pixels, in frame pixels, is where. The running average follows slow changes (light,
a person who stops) within a few seconds, so a still scene costs one small resize, blur and difference per
frame, about a millisecond at 1080p.

One detector per stream, fed every frame in order: its answer depends on the frames before.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH = 160  # pixels across the grey picture motion is measured on (its height keeps the frame's aspect)
RESET_AREA = 0.6  # a change over this fraction of the frame is the scene changing, not something moving
_KERNEL = np.ones((5, 5), np.uint8)


@dataclass(frozen=True)
class Motion:
    """One frame's verdict: ``moving`` when at least the configured area changed; ``area`` the fraction of the
    frame that changed; ``box`` (x1, y1, x2, y2 in frame pixels) around every changed pixel, or ``None``."""

    moving: bool
    area: float
    box: tuple[int, int, int, int] | None


class MotionDetector:
    """Frame differencing against a running average, on a small blurred grey copy of each frame.

    ``threshold``: grey levels (0..255) a pixel must differ by; ``min_area``: fraction of the frame that must
    differ for the frame to move; ``learning_rate``: weight of each new frame in the running average (0.05:
    a change that stays is background after about two seconds at 25 fps).
    """

    def __init__(self, threshold: int = 20, min_area: float = 0.002, learning_rate: float = 0.05):
        self.threshold = threshold
        self.min_area = min_area
        self.learning_rate = learning_rate
        self._size: tuple[int, int] | None = None  # frame width, height the buffers are planned for
        self._small = self._grey = self._blurred = self._diff = self._mask = np.zeros((0, 0), np.uint8)
        self._average = np.zeros((0, 0), np.float32)
        self._average_u8 = np.zeros((0, 0), np.uint8)

    def _plan(self, width: int, height: int) -> None:
        small_h = max(1, round(height * WIDTH / width))
        self._size = (width, height)
        self._small = np.empty((small_h, WIDTH, 3), np.uint8)
        self._grey, self._blurred, self._diff, self._mask, self._average_u8 = (
            np.empty((small_h, WIDTH), np.uint8) for _ in range(5))
        self._average = np.empty((small_h, WIDTH), np.float32)

    def __call__(self, image: np.ndarray) -> Motion:
        """The verdict for the next frame of the stream; the first frame (or the first of a new size) moves."""
        height, width = image.shape[:2]
        first = self._size != (width, height)
        if first:
            self._plan(width, height)
        cv2.resize(image, (WIDTH, self._small.shape[0]), dst=self._small, interpolation=cv2.INTER_AREA)
        cv2.cvtColor(self._small, cv2.COLOR_BGR2GRAY, dst=self._grey)
        cv2.GaussianBlur(self._grey, (5, 5), 0, dst=self._blurred)
        if first:
            self._average[...] = self._blurred
            return Motion(True, 1.0, (0, 0, width, height))
        self._average_u8[...] = self._average  # rounds toward zero: fine for a difference of 20 grey levels
        cv2.absdiff(self._blurred, self._average_u8, dst=self._diff)
        cv2.threshold(self._diff, self.threshold, 255, cv2.THRESH_BINARY, dst=self._mask)
        changed = cv2.countNonZero(self._mask)
        area = changed / self._mask.size
        box = self._box(width, height) if changed else None
        self._learn(area)
        return Motion(area >= self.min_area, area, box)

    def _box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The changed pixels' bounding box in frame pixels."""
        x, y, w, h = cv2.boundingRect(self._mask)
        scale = width / WIDTH
        return (int(x * scale), int(y * scale), min(width, int(np.ceil((x + w) * scale))),
                min(height, int(np.ceil((y + h) * scale))))

    def _learn(self, area: float) -> None:
        """Still pixels join the average at ``learning_rate``, moving ones 50 times slower (so a person who
        stops stays motion for a long while, and leaves no ghost behind); a change over most of the frame
        (lights, the camera moved) becomes the background at once."""
        if area >= RESET_AREA:
            self._average[...] = self._blurred
            return
        cv2.dilate(self._mask, _KERNEL, dst=self._mask)
        cv2.accumulateWeighted(self._blurred, self._average, self.learning_rate / 50, mask=self._mask)
        cv2.bitwise_not(self._mask, dst=self._mask)
        cv2.accumulateWeighted(self._blurred, self._average, self.learning_rate, mask=self._mask)

"""Segmentation logits → class map → class map in frame pixels: the CPU reference.

A segmentation model outputs one score plane per class, ``[C, H, W]`` at model resolution. The class map is
the per-pixel argmax (first maximum wins), kept as uint8 (up to 256 classes); mapped back to the frame it
loses the letterbox padding and is resized with nearest neighbour, so every frame pixel gets a real class.
:class:`edge.gpu.segmentation.GpuClassMap` computes the same numbers on the GPU.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.preprocess import Transform

MAX_CLASSES = 256


class ClassMap:
    """Argmax and resize into preallocated buffers; nothing is allocated per frame."""

    def __init__(self, classes: int, height: int, width: int):
        if not 1 <= classes <= MAX_CLASSES:
            raise ValueError(f"{classes} classes: class maps are uint8, so 1 to {MAX_CLASSES} classes")
        self._best = np.empty((height, width), np.float32)
        self._higher = np.empty((height, width), np.bool_)
        self.class_map = np.empty((height, width), np.uint8)  # at model resolution, letterbox included

    def __call__(self, logits: np.ndarray, transform: Transform, out: np.ndarray) -> np.ndarray:
        """Fills ``out`` (uint8, frame height × width) with the class of each frame pixel from ``[C,H,W]`` logits."""
        # np.argmax over the first axis copies the whole [C,H,W] array; a running maximum over the class planes
        # allocates nothing and keeps the first maximum, as np.argmax does.
        np.copyto(self._best, logits[0])
        self.class_map.fill(0)
        for c in range(1, logits.shape[0]):
            np.greater(logits[c], self._best, out=self._higher)
            np.copyto(self._best, logits[c], where=self._higher)
            np.copyto(self.class_map, c, where=self._higher)
        x, y, w, h = transform.content_box()
        cv2.resize(self.class_map[y:y + h, x:x + w], (out.shape[1], out.shape[0]), dst=out,
                   interpolation=cv2.INTER_NEAREST)
        return out

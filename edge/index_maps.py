"""Whole-frame counting and look-ups over index maps (class maps, id maps), at OpenCV's speed.

NumPy's ``bincount`` first widens every pixel to 64 bits (16 MB for a 1080p map) and a fancy-index
look-up gathers one element at a time; ``cv2.calcHist`` and ``cv2.LUT`` read 8/16-bit maps as they are,
several times faster. Both fall back to NumPy where OpenCV cannot give the exact answer.
"""

from __future__ import annotations

import cv2
import numpy as np

_EXACT_FLOAT32 = 1 << 24  # calcHist counts in float32: exact below 2**24 pixels (a 4K frame is 8.3 M)


def count_values(values: np.ndarray, length: int) -> np.ndarray:
    """[length] int64: how many elements of ``values`` (non-negative integers) equal 0, 1, … ``length - 1``."""
    if values.dtype in (np.uint8, np.uint16) and values.size < _EXACT_FLOAT32:
        return cv2.calcHist([values], [0], None, [length], [0, length]).ravel().astype(np.int64)
    return np.bincount(values.ravel(), minlength=length)[:length]


def look_up(table: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``table[indices]`` for a 1-D ``table`` of uint8/uint16 values."""
    if indices.dtype == np.uint8 and len(table) <= 256:
        padded = np.zeros(256, table.dtype)
        padded[:len(table)] = table
        return cv2.LUT(indices, padded)
    return np.take(table, indices)

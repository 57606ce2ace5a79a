"""Class colours: one colour per class *label*, so "person" is the same colour in a detector's boxes and a
segmenter's mask, in every bundle and every run.

The palette is Ultralytics' 20 colours (the one ``supervision``'s default palette is built from): saturated
enough to read as a 50 % mask tint over bright scenes, no grey (a grey class would look like an unannotated
region), and at least 19 ΔE (CIELAB) apart from each other. Labels map to colours through crc32, which is
stable across processes (``hash`` of a string is not), and each label's colour is computed once.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from functools import lru_cache

import numpy as np

Label = Callable[[int], str]

_HEX = ("FF3838 FF9D97 FF701F FFB21D CFD231 48F90A 92CC17 3DDB86 1A9334 00D4BB "
        "2C99A8 00C2FF 344593 6473FF 0018EC 8438FF 520085 CB38FF FF95C8 FF37C7").split()
PALETTE = np.array([(int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _HEX], np.uint8)  # BGR
BLACK, WHITE = (0, 0, 0), (255, 255, 255)


@lru_cache(maxsize=4096)
def color_for(label: str) -> tuple[int, int, int]:
    """The colour (BGR) of a class label, stable across bundles and runs."""
    b, g, r = PALETTE[zlib.crc32(label.encode()) % len(PALETTE)].tolist()
    return b, g, r


def class_colors(label: Label, class_ids: np.ndarray) -> np.ndarray:
    """[N, 3] uint8 colours of ``class_ids`` (one look-up per distinct class, not per box)."""
    unique, inverse = np.unique(class_ids, return_inverse=True)
    return np.array([color_for(label(c)) for c in unique.tolist()], np.uint8).reshape(-1, 3)[inverse.ravel()]


def color_table(label: Label, count: int) -> np.ndarray:
    """[count, 3] uint8: the colour of class ids ``0 .. count - 1``, for tinting a class map through a LUT."""
    return np.array([color_for(label(c)) for c in range(count)], np.uint8).reshape(-1, 3)


@lru_cache(maxsize=256)
def text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (BGR; Rec. 601 luma)."""
    b, g, r = background
    return BLACK if 0.114 * b + 0.587 * g + 0.299 * r > 150 else WHITE

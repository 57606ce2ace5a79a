"""Frames sampled from the user's own footage, spread over time and deduplicated.

A static camera gives thousands of near-identical frames; calibrating or distilling on them weights the
empty scene and starves the moments that matter. Sampling therefore makes two passes over each source:
the first computes a tiny grey thumbnail of every frame, the second keeps full frames chosen by
:func:`choose_frames` — evenly spread over time, dropping any frame that looks like one already chosen.
Calibration (INT8) and distillation (pruning) both sample here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.progress import bar, say
from streams.sources import open_source

THUMBNAIL = 32  # side of the grey thumbnail that stands for a frame when comparing frames
DUPLICATE_LEVEL = 3.0  # mean absolute thumbnail difference (0..255) below which two frames count as the same


@dataclass(frozen=True)
class SampledFrame:
    """A BGR frame and where it came from, so reports can name it."""

    image: np.ndarray
    source: str
    index: int


def thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32)


def spread_order(n: int) -> np.ndarray:
    """0..n-1 in an order whose every prefix is spread over the range (bit-reversal order)."""
    bits = max(1, int(np.ceil(np.log2(max(n, 2)))))
    codes = np.arange(1 << bits)
    reversed_codes = np.zeros_like(codes)
    for bit in range(bits):  # loop over bits, not over frames
        reversed_codes |= ((codes >> bit) & 1) << (bits - 1 - bit)
    return reversed_codes[reversed_codes < n]


def choose_frames(thumbnails: np.ndarray, count: int, duplicate_level: float = DUPLICATE_LEVEL) -> np.ndarray:
    """Indices (ascending) of up to ``count`` frames, spread over time, no two closer than ``duplicate_level``.

    Candidates are visited in spread order, so whatever number is kept covers the whole clip; each is
    compared with all frames kept so far in one vectorised step.
    """
    flat = thumbnails.reshape(len(thumbnails), -1)
    kept: list[int] = []
    for candidate in spread_order(len(flat)):
        if kept and np.abs(flat[kept] - flat[candidate]).mean(axis=1).min() < duplicate_level:
            continue
        kept.append(int(candidate))
        if len(kept) == count:
            break
    return np.sort(np.asarray(kept, np.int64))


def _frames(uri: str, title: str) -> Iterator[np.ndarray]:
    with open_source(uri) as source, bar(desc=title, unit="frame") as progress:
        for frame in source:
            progress.update(1)
            yield frame.image


def sample_frames(sources: Sequence[str], count: int, duplicate_level: float = DUPLICATE_LEVEL) -> list[SampledFrame]:
    """Up to ``count`` distinct frames from the sources (videos, image folders, globs), shared out evenly. A source
    that holds fewer distinct frames than its share says so: a user who asked for 1,200 frames of a clip whose
    moving objects are too small to change its thumbnails learns that training sees 192."""
    per_source = [count // len(sources) + (i < count % len(sources)) for i in range(len(sources))]
    sampled: list[SampledFrame] = []
    for uri, share in zip(sources, per_source):
        thumbnails = np.stack([thumbnail(image) for image in _frames(uri, "sampling: looking")])
        chosen = set(choose_frames(thumbnails, share, duplicate_level).tolist())
        if len(chosen) < share:
            say(f"{uri}: {len(chosen)} of the {share} frames asked: " + (
                f"it has only {len(thumbnails)}" if len(thumbnails) == len(chosen) else
                f"the other {len(thumbnails) - len(chosen)} of its {len(thumbnails)} look like kept ones (mean "
                f"difference under {duplicate_level:g} grey levels on a {THUMBNAIL}x{THUMBNAIL} thumbnail)"))
        sampled.extend(SampledFrame(image, uri, i) for i, image in enumerate(_frames(uri, "sampling: keeping"))
                       if i in chosen)
    return sampled


def split_holdout(frames: Sequence[SampledFrame], holdout: float) -> tuple[list[SampledFrame], list[SampledFrame]]:
    """(calibration, held-out): every k-th frame is held out, so both sets span the footage and never overlap."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be between 0 and 1, not {holdout}")
    step = max(2, round(1 / holdout))
    held = [f for i, f in enumerate(frames) if i % step == step - 1]
    used = [f for i, f in enumerate(frames) if i % step != step - 1]
    return used, held

"""Progress on long jobs (replay, calibration, quantization, pruning, distillation), with tqdm.

One place sets how every bar looks: on stderr (stdout carries reports and summaries), redrawn in place, and
off when stderr is not a terminal, so logs, pipes and CI get no carriage-return noise. :func:`say` prints a
status line without breaking a bar that is being drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bar(iterable: Iterable[T] | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
        **options: Any) -> tqdm:
    """A progress bar over ``iterable`` (or updated by hand with ``.update(n)``); disabled off a terminal."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True,
                leave=False, **options)


class _FrameBar(tqdm):
    """A bar over frames that shows the rate as ``fps`` (tqdm's own says ``frame/s``) and, once the total is
    known (it may be set after the bar started), the share done and the time left."""

    KNOWN = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} frames, {fps}, ETA {remaining}"
    UNKNOWN = "{desc}: {n_fmt} frames, {fps}, {elapsed}"

    @property
    def format_dict(self) -> dict[str, Any]:
        values = super().format_dict
        rate = values["rate"] or (values["n"] / values["elapsed"] if values["elapsed"] else None)
        values["fps"] = f"{rate:.1f} fps" if rate else "? fps"
        values["bar_format"] = self.KNOWN if values["total"] else self.UNKNOWN
        return values


def frames(total: int | None, desc: str) -> tqdm:
    """A bar of processed frames with their rate and, where ``total`` is known, the time left (ETA)."""
    return _FrameBar(total=total, desc=desc, unit="frame", file=sys.stderr, disable=None, dynamic_ncols=True,
                     leave=False)


def say(line: str) -> None:
    """A status line on stderr, printed above any bar being drawn."""
    tqdm.write(line, file=sys.stderr)

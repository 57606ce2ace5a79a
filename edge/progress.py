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


def say(line: str) -> None:
    """A status line on stderr, printed above any bar being drawn."""
    tqdm.write(line, file=sys.stderr)

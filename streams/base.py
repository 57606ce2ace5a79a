"""What every source shares, in one module that the file sources and the cameras both import: the frame
they yield, the source interface, its error, and what to ask a camera for; and the writers' error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


class SourceError(Exception):
    """A source that cannot be opened or read; the message names it."""


class WriterError(Exception):
    """An output file that cannot be opened or written; the message names it."""


@dataclass(frozen=True)
class Frame:
    """One decoded BGR frame. ``index`` is 0-based in the source; ``pts`` its presentation time in seconds;
    ``captured`` the ``time.monotonic()`` at which it was captured (live) or decoding started (recorded);
    ``decode_s`` how long decoding took; ``source`` the index of its source in the daemon."""

    image: np.ndarray
    index: int
    pts: float
    stream: str
    captured: float
    decode_s: float
    source: int = 0


class Source(ABC):
    """A stream of frames. ``fps`` is the nominal rate (used for pacing and output video). ``live`` sources
    produce frames whether or not anyone reads them, so a reader that falls behind must drop, not queue.
    ``decoded`` counts the frames decoded so far, so a pipeline can show it decodes each frame once however
    many models run; ``skipped`` those that could not be decoded and were passed over."""

    live = False
    length: int | None = None  # frames it holds, where known ahead (a file's count, a folder's images)

    def __init__(self, name: str, fps: float, source_id: int = 0):
        self.name = name
        self.fps = fps
        self.source_id = source_id
        self.decoded = 0
        self.skipped = 0

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yields frames in order; raises :class:`SourceError` if the source breaks."""

    def close(self) -> None:
        """Releases the device or file."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class CaptureSettings:
    """What to ask a camera for; ``None`` keeps the device's default. ``fourcc`` is e.g. ``MJPG`` or ``YUYV``
    (USB cameras often reach their full rate only in MJPG). ``timeout_s`` bounds opening and each read of a
    network stream, so a dead camera is noticed instead of hanging the reader."""

    width: int | None = field(default=None, metadata={"minimum": 1})  # bounds that edge.config checks
    height: int | None = field(default=None, metadata={"minimum": 1})
    fps: float | None = field(default=None, metadata={"above": 0.0})
    fourcc: str | None = field(default=None, metadata={"pattern": "[0-9A-Za-z ]{1,4}"})
    timeout_s: float = field(default=5.0, metadata={"above": 0.0, "maximum": 3600.0})

"""Sources yield :class:`Frame` objects, in order, from video files, image folders, globs and live devices.

A source is chosen from its URI, as jetson-inference's ``videoSource`` does. Recorded sources are
lossless: every frame is yielded once, in order, and a file that ends early is reported, not hidden.
Live sources (cameras, CSI, RTSP/HTTP streams) are in :mod:`streams.cameras`.
"""

from __future__ import annotations

import glob
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_GLOB_CHARS = frozenset("*?[")

if TYPE_CHECKING:
    from streams.cameras import CaptureSettings


class SourceError(Exception):
    """A source that cannot be opened or read; the message names it."""


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
    many models run."""

    live = False

    def __init__(self, name: str, fps: float, source_id: int = 0):
        self.name = name
        self.fps = fps
        self.source_id = source_id
        self.decoded = 0

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """Yields frames in order; raises :class:`SourceError` if the source breaks."""

    def close(self) -> None:
        """Releases the device or file."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoFileSource(Source):
    """A video file decoded by OpenCV (FFmpeg). Timestamps are the container's, not the wall clock's."""

    def __init__(self, path: Path, name: str | None = None, source_id: int = 0):
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise SourceError(f"{path}: cannot open as a video (unsupported format or corrupt file)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        super().__init__(name or path.stem, fps if 0 < fps < 1000 else 30.0, source_id)
        self.frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            start = time.monotonic()
            ok, image = self.capture.read()
            if not ok:
                break
            self.decoded += 1
            pts_ms = self.capture.get(cv2.CAP_PROP_POS_MSEC)
            pts = pts_ms / 1000.0 if pts_ms >= 0 else index / self.fps
            yield Frame(image, index, pts, self.name, start, time.monotonic() - start, self.source_id)
            index += 1
        if index == 0:
            raise SourceError(f"{self.path}: no frame could be decoded (corrupt or empty video)")
        # Container frame counts are estimates (off by one or two); a large shortfall is a truncated file.
        if self.frame_count - index > max(2, self.frame_count // 100):
            raise SourceError(f"{self.path}: decoding stopped at frame {index} of {self.frame_count} "
                              f"(file truncated or corrupt)")

    def close(self) -> None:
        self.capture.release()


class ImageSequenceSource(Source):
    """Still images in name order (a folder, a glob, or one file). ``pts`` is ``index / fps``."""

    def __init__(self, name: str, paths: list[Path], fps: float = 30.0, source_id: int = 0):
        super().__init__(name, fps, source_id)
        self.paths = paths

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            start = time.monotonic()
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"{path}: cannot read as an image (unsupported format or corrupt file)")
            self.decoded += 1
            yield Frame(image, index, index / self.fps, self.name, start, time.monotonic() - start, self.source_id)


def open_source(uri: str, *, name: str | None = None, source_id: int = 0,
                settings: CaptureSettings | None = None) -> Source:
    """Opens a source by URI: a camera index, ``/dev/videoN``, ``csi://N``, an ``rtsp://``/``http://`` URL,
    a video file, an image file, a folder of images or a glob. ``name`` overrides the stream name;
    ``settings`` (:class:`streams.cameras.CaptureSettings`) applies to live sources only."""
    from streams.cameras import CaptureSource, is_live

    if is_live(uri):
        return CaptureSource(uri, name, source_id, settings)
    path = Path(uri).expanduser()
    if any(c in uri for c in _GLOB_CHARS) and not path.exists():
        paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(uri)) if Path(p).is_file())
        if not paths:
            raise SourceError(f"{uri}: the pattern matches no file")
        # named after the folder it searches
        return ImageSequenceSource(name or path.parent.name or "glob", paths, source_id=source_id)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SourceError(f"{path}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageSequenceSource(name or path.name, paths, source_id=source_id)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: not readable (permission denied)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSequenceSource(name or path.stem, [path], source_id=source_id)
    return VideoFileSource(path, name, source_id)

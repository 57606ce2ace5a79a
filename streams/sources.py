"""Sources yield :class:`Frame` objects, in order, from video files, image folders, globs and live devices.

A source is chosen from its URI, as jetson-inference's ``videoSource`` does. Recorded sources are
lossless: every frame is yielded once, in order, and a file that ends early is reported, not hidden. An
image that cannot be read in a folder or glob is skipped, logged and counted (``skipped``), as a camera's
glitch would be; files of a folder that are not images are named in one log line. Only regular files are
read: a FIFO or a device node given as a file would block the reader forever.
Live sources (cameras, CSI, RTSP/HTTP streams) are in :mod:`streams.cameras`; what every source shares
(:class:`Frame`, :class:`Source`, :class:`SourceError`) in :mod:`streams.base`.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from streams.base import CaptureSettings, Frame, Source, SourceError
from streams.cameras import CaptureSource, ffmpeg_capture
from streams.uris import is_glob, is_live, stream_name

log = logging.getLogger("streams.sources")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class VideoFileSource(Source):
    """A video file decoded by OpenCV (FFmpeg). Timestamps are the container's, not the wall clock's."""

    def __init__(self, path: Path, name: str | None = None, source_id: int = 0):
        self.path = path
        self.capture = ffmpeg_capture(str(path), "")
        if not self.capture.isOpened():
            raise SourceError(f"{path}: cannot open as a video (unsupported format or corrupt file)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        super().__init__(name or path.stem, fps if 0 < fps < 1000 else 30.0, source_id)
        self.frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = self.frame_count if self.frame_count > 0 else None

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
        self.length = len(paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            start = time.monotonic()
            image = cv2.imread(str(path), cv2.IMREAD_COLOR) if _is_regular(path) else None
            if image is None:
                self.skipped += 1
                log.warning("image skipped: cannot read it (unsupported format or corrupt file)",
                            extra={"path": str(path)})
                continue
            self.decoded += 1
            yield Frame(image, index, index / self.fps, self.name, start, time.monotonic() - start, self.source_id)
        if self.decoded == 0:
            raise SourceError(f"{self.name}: none of its {len(self.paths)} images could be read")


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _folder_images(path: Path) -> list[Path]:
    """The images of a folder in name order; the other files are named in one log line."""
    files = sorted(p for p in path.iterdir() if not p.is_dir())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if others and images:
        log.warning("files that are not images ignored", extra={"folder": str(path), "count": len(others),
                                                                 "files": ", ".join(others[:5])})
    return images


def open_source(uri: str, *, name: str | None = None, source_id: int = 0,
                settings: CaptureSettings | None = None) -> Source:
    """Opens a source by URI: a camera index, ``/dev/videoN``, ``csi://N``, an ``rtsp://``/``http://`` URL,
    a video file, an image file, a folder of images or a glob. ``name`` overrides the stream name
    (:func:`streams.uris.stream_name`); ``settings`` applies to live sources only."""
    name = name or stream_name(uri)
    if is_live(uri):
        return CaptureSource(uri, name, source_id, settings)
    path = Path(uri).expanduser()
    if is_glob(uri):
        paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(uri)) if Path(p).is_file())
        if not paths:
            raise SourceError(f"{uri}: the pattern matches no file")
        return ImageSequenceSource(name, paths, source_id=source_id)
    if path.is_dir():
        paths = _folder_images(path)
        if not paths:
            raise SourceError(f"{path}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageSequenceSource(name, paths, source_id=source_id)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: not readable (permission denied)")
    if not _is_regular(path):
        raise SourceError(f"{path}: not a regular file (a FIFO, socket or device); give a video file, an image, "
                          f"a folder or a glob, or a camera as /dev/videoN")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSequenceSource(name, [path], source_id=source_id)
    return VideoFileSource(path, name, source_id)

"""File writers for results: an events file (JSON lines, each written whole), the annotated video
(:mod:`streams.video`), and per-frame images (masks) in folders. They know files, not frames or models: the
pipeline's sinks (:mod:`edge.pipeline.sinks`) decide what to write. Every failure is a :class:`WriterError`
that names the file."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import cv2
import numpy as np

from streams.base import WriterError
from streams.video import VideoFileWriter

__all__ = ["EventLog", "ImageFolderWriter", "VideoFileWriter", "WriterError"]


class EventLog:
    """``events.jsonl``: one JSON document per line, each line handed to the kernel whole, so every line on
    disk is complete JSON whatever happens to the process.

    Each line is one ``os.write`` of its bytes (no buffer holds half a line). A write that fails part-way (a
    full disk: ENOSPC) is undone by cutting the file back to the last complete line, and raises
    :class:`WriterError` naming the file, so the run stops cleanly there. The file is synced to the device
    at most once a second (``SYNC_S``), which bounds what a power cut can take. With ``append`` (the daemon,
    restarted by systemd) earlier lines are kept; a line a power cut left incomplete is cut off first.

    With ``max_bytes``, a file that reaches that size is rotated as logging's ``RotatingFileHandler`` does
    (``events.jsonl`` → ``events.jsonl.1`` → … ``.{backups}``), between lines, so a daemon running for weeks
    keeps a bounded amount of history and no line is ever split across files.
    """

    SYNC_S = 1.0

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = 5, *, append: bool = False):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.lines = 0
        self._fd = self._open(append)
        self._size = os.lseek(self._fd, 0, os.SEEK_END)
        self._synced = time.monotonic()

    def _open(self, append: bool) -> int:
        flags = os.O_CREAT | (os.O_RDWR if append else os.O_WRONLY | os.O_TRUNC)  # read: to find the last line
        try:
            fd = os.open(self.path, flags, 0o644)
            if append:
                _cut_after_last_line(fd)
            return fd
        except OSError as e:
            raise WriterError(f"{self.path}: cannot write ({e.strerror})") from None

    def write(self, line: str) -> None:
        """Appends ``line``, one JSON document already encoded (once for every output that sends it)."""
        data = (line + "\n").encode()
        written = 0
        try:
            while written < len(data):
                n = os.write(self._fd, data[written:])
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
        except OSError as e:
            self._undo(written)
            raise WriterError(f"{self.path}: cannot write ({e.strerror}); it ends at its last complete line") from None
        self._size += written
        self.lines += 1
        now = time.monotonic()
        if now - self._synced >= self.SYNC_S:
            self._synced = now
            try:
                os.fsync(self._fd)
            except OSError as e:
                raise WriterError(f"{self.path}: cannot write ({e.strerror})") from None
        if self.max_bytes is not None and self._size >= self.max_bytes:
            self._rotate()

    def _undo(self, written: int) -> None:
        if written:
            try:
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
            except OSError:
                pass  # the next read stops at the cut line; nothing better can be done on a failing disk

    def _rotate(self) -> None:
        os.close(self._fd)
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fd = self._open(append=False)
        self._size = 0

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.fsync(fd)
            except OSError:
                pass  # every line was written whole; a failed sync loses nothing already on disk
            finally:
                os.close(fd)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_after_last_line(fd: int) -> None:
    """Cuts an incomplete last line (a power cut mid-write) off the file open as ``fd``."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            return
        end = start
    os.ftruncate(fd, 0)


class ImageFolderWriter:
    """Lossless PNGs under ``root``, one per ``write`` (e.g. ``masks/<bundle>/000012.png``); 8- or 16-bit
    single-channel arrays are written as they are, so class and instance ids survive exactly."""

    def __init__(self, root: Path):
        self.root = root
        self._folders: set[Path] = set()
        self.images = 0

    def write(self, relative: str, image: np.ndarray) -> None:
        path = self.root / relative
        if path.parent not in self._folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(path.parent)
        if not cv2.imwrite(str(path), image):
            raise WriterError(f"{path}: cannot write the image")
        self.images += 1

"""File writers for results: an events file (JSON lines, flushed per line), an annotated video file, and
per-frame images (masks) in folders. They know files, not frames or models: the pipeline's sinks
(:mod:`edge.pipeline.sinks`) decide what to write."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


class WriterError(Exception):
    """A file that cannot be opened or written; the message names it."""


class EventLog:
    """``events.jsonl``: one JSON document per line, flushed as written, so a crash loses at most
    the line being written and every line on disk is complete JSON.

    With ``max_bytes``, a file that reaches that size is rotated as logging's ``RotatingFileHandler`` does
    (``events.jsonl`` → ``events.jsonl.1`` → … ``.{backups}``), between lines, so a daemon running for weeks
    keeps a bounded amount of history and no line is ever split across files.
    """

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = 5):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.lines = 0
        self._file = self._open()

    def _open(self):
        try:
            return open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as e:
            raise WriterError(f"{self.path}: cannot write ({e.strerror})") from None

    def write(self, line: str) -> None:
        """Appends ``line``, one JSON document already encoded (once for every output that sends it)."""
        self._file.write(line + "\n")
        self._file.flush()
        self.lines += 1
        if self.max_bytes is not None and self._file.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self._open()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoFileWriter:
    """An MP4 (MPEG-4 Part 2, ``mp4v``: the codec every OpenCV build can write) opened on the first frame,
    whose size it takes. ``close`` finalises the container so the file plays."""

    FOURCC = "mp4v"

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.FOURCC), self.fps,
                                           (width, height))
            if not self._writer.isOpened():
                raise WriterError(f"{self.path}: cannot open a {self.FOURCC} video writer")
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

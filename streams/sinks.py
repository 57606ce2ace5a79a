"""Where results go: an events file (JSON lines, flushed per frame), an annotated video file, and per-frame
images (masks) in folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np


class SinkError(Exception):
    """A sink that cannot be opened or written; the message names it."""


class EventLog:
    """``events.jsonl``: one compact JSON object per line, flushed as written, so a crash loses at most
    the line being written and every line on disk is complete JSON."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.lines = 0

    def write(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._file.flush()
        self.lines += 1

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
                raise SinkError(f"{self.path}: cannot open a {self.FOURCC} video writer")
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
            raise SinkError(f"{path}: cannot write the image")
        self.images += 1

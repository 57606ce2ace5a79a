"""Writes the snapshots and clips :class:`edge.analytics.media.MediaPlan` named, under ``OUT/snapshots/`` and
``OUT/clips/``, within a disk budget.

A snapshot is the event's annotated frame as JPEG (encoded once per frame however many events it has). A
clip starts with a ring of the stream's last ``pre_s`` seconds of annotated frames (buffers made once, at
most ``RING_MB``), then takes each frame until its end, through :class:`streams.writers.VideoFileWriter`.
:class:`MediaStore` keeps what is on disk under ``media_mb``, deleting the oldest files first (an event may
then name a file that is gone).
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from edge.analytics.media import ClipCue
from edge.analytics.settings import AnalyticsSettings
from edge.pipeline.messages import FrameResult
from streams.writers import VideoFileWriter, WriterError

JPEG_QUALITY = 90
RING_MB = 256  # the most memory a stream's ring of frames for clips may take


class MediaStore:
    """The files under ``root`` (snapshots and clips), oldest first, kept under ``max_bytes`` in all; files
    already there (a daemon's earlier run) count too."""

    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = root, max_bytes
        found = [p for folder in ("snapshots", "clips") for p in (root / folder).glob("*") if p.is_file()]
        found.sort(key=lambda p: p.stat().st_mtime)
        self._files: deque[tuple[Path, int]] = deque((p, p.stat().st_size) for p in found)
        self.total = sum(size for _, size in self._files)
        self.deleted = 0

    def add(self, path: Path) -> None:
        """Counts a new file, then deletes the oldest until the total fits (never the new one)."""
        size = path.stat().st_size
        self._files.append((path, size))
        self.total += size
        while self.total > self.max_bytes and len(self._files) > 1:
            old, old_size = self._files.popleft()
            old.unlink(missing_ok=True)
            self.total -= old_size
            self.deleted += 1


class _Ring:
    """The last ``length`` annotated frames of a stream and their stream times, in buffers made once."""

    def __init__(self, length: int, shape: tuple[int, ...]):
        self.images = np.empty((length, *shape), np.uint8)
        self.times = np.full(length, -math.inf)
        self.next = 0

    def add(self, image: np.ndarray, pts: float) -> None:
        np.copyto(self.images[self.next], image)
        self.times[self.next] = pts
        self.next = (self.next + 1) % len(self.times)

    def since(self, pts: float) -> list[np.ndarray]:
        """Frames from stream time ``pts`` on, oldest first."""
        order = [(self.next + i) % len(self.times) for i in range(len(self.times))]
        return [self.images[i] for i in order if self.times[i] >= pts]


class MediaSink:
    """Writes what :class:`MediaPlan` named: a JPEG per event, clips around them. Not critical: a full disk
    costs snapshots, not the events."""

    critical = False

    def __init__(self, out: Path, settings: AnalyticsSettings):
        self.out, self.settings = out, settings
        for folder in ("snapshots", "clips"):
            (out / folder).mkdir(parents=True, exist_ok=True)
        self.store = MediaStore(out, int(settings.media_mb * 2**20))
        self._rings: dict[str, _Ring] = {}
        self._clips: dict[str, tuple[str, VideoFileWriter]] = {}  # stream → (name, writer)

    def write(self, item: FrameResult) -> None:
        analytics, frame = item.analytics, item.frame
        if analytics is None:
            return
        if self.settings.clips is not None:
            self._clip(item, analytics.clip)
        jpeg: bytes | None = None
        for event in analytics.events:
            if "snapshot" in event:
                if jpeg is None:
                    ok, encoded = cv2.imencode(".jpg", item.annotated(), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                    if not ok:
                        raise WriterError(f"frame {frame.index} of {frame.stream}: cannot encode a snapshot")
                    jpeg = encoded.tobytes()
                path = self.out / event["snapshot"]
                path.write_bytes(jpeg)
                self.store.add(path)

    def _clip(self, item: FrameResult, cue: ClipCue | None) -> None:
        stream, pts, image = item.frame.stream, item.frame.pts, item.annotated()
        active = self._clips.get(stream)
        if active is not None and (cue is None or cue.name != active[0]):
            self._finish(stream)
            active = None
        if cue is not None and active is None:
            writer = VideoFileWriter(self.out / cue.name, item.fps or 30.0)
            ring = self._rings.get(stream)
            for earlier in ring.since(pts - self.settings.clips.pre_s) if ring is not None else []:
                writer.write(earlier)
            self._clips[stream] = active = (cue.name, writer)
        if active is not None:
            active[1].write(image)
        self._ring(stream, image, item.fps).add(image, pts)

    def _ring(self, stream: str, image: np.ndarray, fps: float) -> _Ring:
        ring = self._rings.get(stream)
        if ring is None or ring.images.shape[1:] != image.shape:
            wanted = math.ceil(self.settings.clips.pre_s * (fps or 30.0))
            length = max(1, min(wanted, RING_MB * 2**20 // max(image.nbytes, 1)))
            ring = self._rings[stream] = _Ring(length, image.shape)
        return ring

    def _finish(self, stream: str) -> None:
        name, writer = self._clips.pop(stream)
        writer.close()
        self.store.add(self.out / name)

    def close(self) -> None:
        for stream in list(self._clips):
            self._finish(stream)

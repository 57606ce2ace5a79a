"""One feed per source: decode (in a thread or a process), reopen with backoff, hand frames to the queue.

A feed is a small state machine (``StreamState``): STARTING → STREAMING → (RECONNECTING → STREAMING)* →
ENDED or FAILED. A recorded source ends when its file does; a source marked ``reconnect`` (every live one
by default) that fails or ends is reopened after an exponential backoff, capped, and counted, while the
other feeds go on, for as long as the process runs: only ``stop`` ends a reconnecting feed. The backoff
starts again from ``first_s`` once an opening delivered frames. Frame numbers keep counting across
reopenings, so events of one stream never repeat an index. Whatever a reader raises (an OpenCV error
included) is a failure of the stream, logged as one line, never a traceback from the thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from streams.base import CaptureSettings, Frame, SourceError
from streams.frame_queue import DropPolicy, FrameQueue
from streams.pacing import paced
from streams.sources import open_source

log = logging.getLogger("streams.feed")


class StreamState(str, Enum):
    STARTING = "starting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


class DecodeMode(str, Enum):
    THREAD = "thread"
    PROCESS = "process"


@dataclass(frozen=True)
class SourceSpec:
    """Everything needed to (re)open one source, picklable so a decoder process can receive it."""

    uri: str
    source_id: int = 0
    name: str | None = None
    settings: CaptureSettings = CaptureSettings()
    realtime: bool = False  # pace a recorded source at its own frame rate
    reconnect: bool = False
    policy: DropPolicy = DropPolicy.LOSSLESS


# Bounds a configuration checks (field metadata, read by edge.config): a delay must be positive and at most a day.
_DELAY = {"above": 0.0, "maximum": 86400.0}


@dataclass(frozen=True)
class Backoff:
    """Reopen delays ``first_s * 2**n`` capped at ``cap_s``, for any number ``n`` of failed attempts in a row."""

    first_s: float = field(default=0.5, metadata=_DELAY)
    cap_s: float = field(default=30.0, metadata=_DELAY)

    def delay(self, attempt: int) -> float:
        # 2.0**64 is a finite float and first_s * 2**64 exceeds any cap: the exponent never has to grow further.
        return min(self.cap_s, self.first_s * 2.0 ** min(attempt, 64))


class ThreadReader:
    """Decodes in the calling thread; OpenCV releases the GIL while it decodes."""

    def __init__(self, spec: SourceSpec, stop: threading.Event):
        self.source = open_source(spec.uri, name=spec.name, source_id=spec.source_id, settings=spec.settings)
        self.name, self.fps, self.length = self.source.name, self.source.fps, self.source.length
        self._frames = paced(self.source) if spec.realtime else iter(self.source)

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    @property
    def dropped(self) -> int:
        """Frames lost before the queue: here, those the source could not decode and skipped."""
        return self.source.skipped

    def close(self) -> None:
        self.source.close()


def open_reader(spec: SourceSpec, mode: DecodeMode, stop: threading.Event) -> ThreadReader:
    if mode is DecodeMode.PROCESS:
        from streams.ring import ProcessReader

        return ProcessReader(spec, stop)  # type: ignore[return-value]
    return ThreadReader(spec, stop)


class SourceFeed:
    """Runs one source in its own thread until it ends, fails for good, or ``stop`` is set."""

    def __init__(self, spec: SourceSpec, queue: FrameQueue, stop: threading.Event,
                 mode: DecodeMode = DecodeMode.THREAD, backoff: Backoff = Backoff()):
        self.spec, self.queue, self.stop, self.mode, self.backoff = spec, queue, stop, mode, backoff
        self.name = spec.name or spec.uri
        self.fps = 0.0
        self.length: int | None = None  # frames the source holds, where known (files, folders)
        self.state = StreamState.STARTING
        self.reconnects = 0
        self.frames = 0
        self.error: SourceError | None = None
        self.opened = threading.Event()  # set once the source opened (``name``/``fps`` known) or gave up
        self._thread = threading.Thread(target=self._run, name=f"feed-{spec.source_id}", daemon=True)

    def start(self) -> SourceFeed:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        attempt = 0
        try:
            while not self.stop.is_set():
                before = self.frames
                try:
                    self._stream()
                    if self.stop.is_set() or not self.spec.reconnect:
                        self.state = StreamState.ENDED
                        return
                    raise SourceError(f"{self.spec.uri}: the stream ended")
                except Exception as e:
                    if self.stop.is_set():
                        return
                    error = e if isinstance(e, SourceError) else SourceError(
                        f"{self.spec.uri}: reading failed ({type(e).__name__}: {e})")
                    if not self.spec.reconnect:
                        self.error, self.state = error, StreamState.FAILED
                        log.info("stream failed", extra={"stream": self.name, "error": str(error)})
                        return
                    attempt = 0 if self.frames > before else attempt
                    delay = self.backoff.delay(attempt)
                    attempt += 1
                    self.reconnects += 1
                    self.state = StreamState.RECONNECTING
                    log.warning("stream lost; reopening", extra={"stream": self.name, "error": str(error),
                                                                  "retry_in_s": delay, "reconnects": self.reconnects})
                    self.stop.wait(delay)
        finally:
            if self.state not in (StreamState.ENDED, StreamState.FAILED):
                self.state = StreamState.ENDED
            self.opened.set()
            self.queue.close(self.spec.source_id)

    def _stream(self) -> None:
        """One opening of the source: every frame to the queue until it ends, fails or we stop."""
        reader = open_reader(self.spec, self.mode, self.stop)
        try:
            self.name, self.fps, self.length = reader.name, reader.fps, reader.length
            self.state = StreamState.STREAMING
            self.opened.set()
            log.info("stream open", extra={"stream": self.name, "fps": round(self.fps, 2), "decode": self.mode.value})
            offset, reported = self.frames, 0
            try:
                for frame in reader:
                    if offset:
                        frame = dataclasses.replace(frame, index=frame.index + offset)
                    self.queue.put(frame, self.stop)
                    self.frames += 1
                    if reader.dropped != reported:
                        self.queue.add_dropped(self.spec.source_id, reader.dropped - reported)
                        reported = reader.dropped
                    if self.stop.is_set():
                        return
            finally:  # what the reader dropped after its last frame
                self.queue.add_dropped(self.spec.source_id, reader.dropped - reported)
        finally:
            reader.close()

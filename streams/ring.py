"""Decoding in a child process, frames handed over through a ring of shared-memory buffers, never pickled.

The child opens the source, creates a ring of ``slots`` preallocated frame buffers in one
``multiprocessing.shared_memory`` block (sized from the first frame; a larger frame later gets a new,
larger ring with the next generation number), writes each frame into a free slot and sends only its
metadata (slot, shape, index, timestamps) down a pipe. The parent copies the frame out and sends the slot
straight back, so a slot is busy for one copy, never for the time a frame spends in the pipeline, and the
lifetime of pipeline frames is plain NumPy reference counting.

Live sources never wait for a slot: without one the frame is dropped in the child and counted. Recorded
sources wait, so replay stays lossless.

Cleanup: the parent owns every ring: it unlinks a ring when the child announces the next one and when the
reader closes. Closing the pipes tells the child to stop; one that does not (blocked in a read) is
terminated, then killed, and always joined, so no zombie is left. Blocks a crash leaves behind are
unlinked by multiprocessing's resource tracker when the program exits.
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Iterator
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import NamedTuple

import numpy as np

from streams.base import Frame, SourceError
from streams.frame_queue import DropPolicy
from streams.pacing import paced
from streams.sources import open_source

SLOTS = 4
_POLL_S = 0.1


# What the child sends the parent, one message per pipe send.
class Opened(NamedTuple):
    name: str
    fps: float
    length: int | None = None  # frames the source holds, where known


class NewRing(NamedTuple):
    """Frames from now on go through this ring (the previous one is the parent's to unlink)."""

    memory: str
    generation: int
    slot_bytes: int
    slots: int


class FrameReady(NamedTuple):
    """A frame in ``slot`` of ring ``generation``; ``dropped`` counts the frames dropped so far for want of a
    free slot."""

    generation: int
    slot: int
    shape: tuple[int, ...]
    index: int
    pts: float
    captured: float
    decode_s: float
    dropped: int


class Ended(NamedTuple):
    """The source ended."""


class Failed(NamedTuple):
    error: str


ChildMessage = Opened | NewRing | FrameReady | Ended | Failed


class SlotFree(NamedTuple):
    """What the parent sends back: it copied the frame out of ``slot``."""

    generation: int
    slot: int


class Ring:
    """``slots`` frame buffers of ``slot_bytes`` each in one shared-memory block."""

    def __init__(self, generation: int, slot_bytes: int, slots: int, name: str | None = None):
        self.generation, self.slot_bytes, self.slots = generation, slot_bytes, slots
        self.memory = SharedMemory(name=name, create=name is None, size=slot_bytes * slots if name is None else 0)

    def view(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.ndarray(shape, np.uint8, buffer=self.memory.buf, offset=slot * self.slot_bytes)

    def close(self, unlink: bool = False) -> None:
        self.memory.close()
        if unlink:
            self.memory.unlink()


def _decode_main(spec, frames_out: Connection, slots_back: Connection, slot_count: int) -> None:
    """The child: decode, write into free slots, announce; exits when the source ends or the parent leaves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    ring: Ring | None = None
    try:
        try:
            source = open_source(spec.uri, name=spec.name, source_id=spec.source_id, settings=spec.settings)
        except SourceError as e:
            frames_out.send(Failed(str(e)))
            return
        with source:
            frames_out.send(Opened(source.name, source.fps, source.length))
            free: deque[int] = deque()
            dropped = 0
            for frame in paced(source) if spec.realtime else source:
                image = frame.image
                if ring is None or image.nbytes > ring.slot_bytes:
                    if ring is not None:
                        ring.close()
                    ring = Ring(ring.generation + 1 if ring else 0, image.nbytes, slot_count)
                    free = deque(range(slot_count))
                    frames_out.send(NewRing(ring.memory.name, ring.generation, ring.slot_bytes, slot_count))
                while slots_back.poll() or (not free and spec.policy is DropPolicy.LOSSLESS):
                    returned: SlotFree = slots_back.recv()  # lossless with no slot free: wait (EOF ends us)
                    if returned.generation == ring.generation:
                        free.append(returned.slot)
                if not free:
                    dropped += 1
                    continue
                slot = free.popleft()
                np.copyto(ring.view(slot, image.shape), image)
                frames_out.send(FrameReady(ring.generation, slot, image.shape, frame.index, frame.pts,
                                           frame.captured, frame.decode_s, dropped + source.skipped))
            frames_out.send(Ended())
    except SourceError as e:
        frames_out.send(Failed(str(e)))
    except (EOFError, BrokenPipeError, OSError):
        pass  # the parent closed its ends: it is stopping
    finally:
        if ring is not None:
            ring.close()


class ProcessReader:
    """Frames decoded by a child process. Opening waits for the child to open the source (or fail)."""

    def __init__(self, spec, stop: threading.Event, slots: int = SLOTS):
        self.spec, self.stop = spec, stop
        self.dropped = 0
        self._ring: Ring | None = None
        context = get_context("spawn")  # never fork a process that runs inference threads
        self._frames, frames_out = context.Pipe(duplex=False)
        slots_in, self._slots = context.Pipe(duplex=False)
        self.process = context.Process(target=_decode_main, args=(spec, frames_out, slots_in, slots),
                                       name=f"decode-{spec.source_id}", daemon=True)
        self.process.start()
        frames_out.close()
        slots_in.close()
        try:
            message = self._receive()
            if message is None:
                raise SourceError(f"{spec.uri}: stopped while opening")
            if not isinstance(message, Opened):
                raise SourceError(message.error if isinstance(message, Failed) else f"{spec.uri}: decoder failed")
        except BaseException:
            self.close()
            raise
        self.name, self.fps, self.length = message.name, message.fps, message.length

    def _receive(self) -> ChildMessage | None:
        """The child's next message; ``None`` once stopping; :class:`SourceError` if the child died."""
        while not self.stop.is_set():
            try:
                if self._frames.poll(_POLL_S):
                    return self._frames.recv()
            except (EOFError, OSError):
                break
            if not self.process.is_alive() and not self._frames.poll():
                break
        if self.stop.is_set():
            return None
        self.process.join(1)
        raise SourceError(f"{self.spec.uri}: the decoder process died (exit code {self.process.exitcode})")

    def __iter__(self) -> Iterator[Frame]:
        while (message := self._receive()) is not None:
            if isinstance(message, FrameReady):
                self.dropped = message.dropped
                image = self._ring.view(message.slot, message.shape).copy()
                try:
                    self._slots.send(SlotFree(message.generation, message.slot))
                except OSError:
                    pass  # the child already finished (its last frames are still in the pipe)
                yield Frame(image, message.index, message.pts, self.name, message.captured, message.decode_s,
                            self.spec.source_id)
            elif isinstance(message, NewRing):
                if self._ring is not None:
                    self._ring.close(unlink=True)
                self._ring = Ring(message.generation, message.slot_bytes, message.slots, name=message.memory)
            elif isinstance(message, Ended):
                return
            else:
                raise SourceError(message.error)

    def close(self) -> None:
        """Stops and reaps the child and unlinks the ring; safe to call more than once."""
        for connection in (self._frames, self._slots):
            connection.close()
        self.process.join(2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        if self._ring is not None:
            self._ring.close(unlink=True)
            self._ring = None

"""Decoding in a child process through shared memory: same frames as in a thread, no leaks, no zombies."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from streams.feed import SourceSpec, ThreadReader
from streams.frame_queue import DropPolicy
from streams.ring import ProcessReader
from streams.sources import SourceError


def shm_blocks() -> set[str]:
    return set(os.listdir("/dev/shm")) if Path("/dev/shm").is_dir() else set()


def test_process_frames_equal_thread_frames_and_cleanup(assets):
    spec = SourceSpec(str(assets / "videos/face-demographics-walking.gif"))
    before = shm_blocks()
    stop = threading.Event()
    reader = ProcessReader(spec, stop)
    from_process = list(reader)
    reader.close()
    assert reader.process.exitcode is not None  # reaped
    assert shm_blocks() == before  # ring unlinked
    reference = ThreadReader(spec, stop)
    from_thread = list(reference)
    reference.close()
    assert len(from_process) == len(from_thread) == 35
    for a, b in zip(from_process, from_thread):
        assert a.index == b.index and a.pts == pytest.approx(b.pts)
        np.testing.assert_array_equal(a.image, b.image)


def test_a_larger_frame_gets_a_new_ring(tmp_path):
    for i, size in enumerate([(64, 48), (320, 240), (32, 32)]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((size[1], size[0], 3), 40 * i, np.uint8))
    reader = ProcessReader(SourceSpec(str(tmp_path)), threading.Event())
    shapes = [frame.image.shape for frame in reader]
    reader.close()
    assert shapes == [(48, 64, 3), (240, 320, 3), (32, 32, 3)]


def test_stopping_mid_stream_reaps_the_child(assets):
    stop = threading.Event()
    before = shm_blocks()
    reader = ProcessReader(SourceSpec(str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"),
                                      policy=DropPolicy.LATEST), stop)
    frames = iter(reader)
    next(frames)
    stop.set()
    assert list(frames) == []
    reader.close()
    assert not reader.process.is_alive() and reader.process.exitcode is not None
    assert shm_blocks() == before


def test_open_failure_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        ProcessReader(SourceSpec(str(tmp_path / "missing.mp4")), threading.Event())

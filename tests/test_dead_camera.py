"""A network camera that stays dead (issue 13, defect 2): the feed retries at ``cap_s`` for as long as the
process runs, starts its backoff again once frames arrive, and only a stop ends it."""

from __future__ import annotations

import threading
import time

import numpy as np

from streams.base import Frame, SourceError
from streams.feed import Backoff, SourceFeed, SourceSpec, StreamState
from streams.frame_queue import DropPolicy, FrameQueue
from tests.helpers.runs import JsonLog, start
from tests.helpers.servers import free_port

DEAD = "rtsp://127.0.0.1:{port}/x"


def test_the_delay_stays_at_the_cap_however_many_attempts():
    backoff = Backoff(first_s=0.001, cap_s=0.002)
    assert [backoff.delay(n) for n in (0, 1, 2)] == [0.001, 0.002, 0.002]
    for attempt in (1023, 1024, 1025, 10**6, 10**12):
        assert backoff.delay(attempt) == 0.002


def feed_of(uri: str, backoff: Backoff) -> tuple[SourceFeed, threading.Event]:
    stop = threading.Event()
    spec = SourceSpec(uri, reconnect=True, policy=DropPolicy.LATEST)
    return SourceFeed(spec, FrameQueue([DropPolicy.LATEST]), stop, backoff=backoff), stop


def test_a_dead_camera_is_retried_past_2000_attempts_until_stopped():
    """The real capture path (OpenCV's FFmpeg on an RTSP port where nothing listens), a tiny cap."""
    feed, stop = feed_of(DEAD.format(port=free_port()), Backoff(first_s=0.0001, cap_s=0.0002))
    feed.start()
    deadline = time.monotonic() + 120
    while feed.reconnects <= 2000 and feed.state is not StreamState.ENDED and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert feed.reconnects > 2000
        assert feed.state is StreamState.RECONNECTING and feed.error is None
    finally:
        stop.set()
        feed.join(10)
    assert feed.state is StreamState.ENDED


class Openings:
    """What each opening of a camera gives: a number of frames, then the stream fails."""

    def __init__(self, frames_per_opening):
        self.plan = list(frames_per_opening)
        self.attempts: list[int] = []

    def open(self, spec, mode, stop):
        frames = self.plan.pop(0) if self.plan else 0
        if frames == 0:
            raise SourceError(f"{spec.uri}: cannot open the stream")
        return _Reader(frames)


class _Reader:
    name, fps, dropped, length = "cam", 25.0, 0, None

    def __init__(self, frames):
        self.frames = frames

    def __iter__(self):
        for index in range(self.frames):
            yield Frame(np.zeros((4, 4, 3), np.uint8), index, 0.0, "cam", time.monotonic(), 0.0)
        raise SourceError("cam: the stream stopped")

    def close(self):
        pass


class RecordedBackoff(Backoff):
    """The real delays, with the attempt numbers the feed asked for."""

    def delay(self, attempt: int) -> float:
        self.__dict__.setdefault("asked", []).append(attempt)
        return super().delay(attempt)


def test_the_backoff_starts_again_once_frames_arrived(monkeypatch):
    openings = Openings([0, 0, 0, 3, 0, 0, 2, 0])
    monkeypatch.setattr("streams.feed.open_reader", openings.open)
    backoff = RecordedBackoff(first_s=0.001, cap_s=0.004)
    feed, stop = feed_of("rtsp://camera/x", backoff)
    feed.start()
    deadline = time.monotonic() + 30
    while len(backoff.__dict__.get("asked", [])) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    feed.join(10)
    # Three failed openings, one with frames (back to 0), two failed, one with frames (back to 0), one failed.
    assert backoff.asked[:8] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert feed.frames == 5


def test_a_reader_failing_with_any_exception_is_a_stream_failure_not_a_thread_traceback(monkeypatch):
    def broken(spec, mode, stop):
        raise RuntimeError("OpenCV(4.x) error: (-215:Assertion failed)")

    monkeypatch.setattr("streams.feed.open_reader", broken)
    stop = threading.Event()
    feed = SourceFeed(SourceSpec("clip.mp4"), FrameQueue([DropPolicy.LOSSLESS]), stop).start()
    feed.join(10)
    assert feed.state is StreamState.FAILED
    assert isinstance(feed.error, SourceError)
    assert "clip.mp4" in str(feed.error) and "RuntimeError" in str(feed.error)


def test_the_daemon_keeps_retrying_a_dead_camera_and_only_a_signal_ends_it(yolox_bundle, tmp_path):
    """``edge run`` with the issue's repro: a dead RTSP camera and a tiny backoff. Past 2000 attempts it is
    still running; SIGTERM ends it with 0; every stderr line is a JSON log record."""
    config = tmp_path / "edge.yaml"
    config.write_text(f"""
sources: [{{url: "{DEAD.format(port=free_port())}", timeout_s: 1}}]
bundles: [{yolox_bundle.root}]
out: {tmp_path / 'out'}
reconnect: {{first_s: 0.0001, cap_s: 0.0002}}
""")
    log = JsonLog(start("run", "--config", config))
    try:
        log.until(lambda r: len(r) > 2000 and sum(x["msg"] == "stream lost; reopening" for x in r) > 2000, 180)
        assert log.process.poll() is None
        records = log.stop()
    finally:
        log.process.kill()
    assert records[-1]["msg"] == "stopped"
    assert {r["retry_in_s"] for r in records if r["msg"] == "stream lost; reopening"} == {0.0001, 0.0002}

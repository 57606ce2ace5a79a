"""Real-time policy with a model slower than the camera: live drops and stays fresh, replay loses nothing."""

from __future__ import annotations

import resource
import threading

import numpy as np

import tests.helpers.slow_backend  # noqa: F401 (registers the "slow" test backend)
from edge.graph import RunnerGraph
from edge.pipeline import Pipeline
from streams.feed import SourceSpec
from streams.frame_queue import DropPolicy


class Latencies:
    """A sink recording capture-to-sink latency and frame numbers."""

    critical = True

    def __init__(self):
        self.latencies, self.frames, self.rss = [], [], []

    def write(self, item):
        import time

        self.latencies.append(time.monotonic() - item.frame.captured)
        self.frames.append(item.frame.index)
        self.rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def close(self):
        pass


def run_for(pipeline: Pipeline, seconds: float) -> None:
    timer = threading.Timer(seconds, pipeline.stop)
    timer.start()
    try:
        pipeline.run()
    finally:
        timer.cancel()


def test_live_latency_stays_bounded_and_drops_are_counted(yolox_bundle, assets):
    """25 fps camera, a model that takes > 120 ms a frame on one worker: most frames must be dropped, and the
    wait from capture to result must not grow over the run, as it would with a queue."""
    sink = Latencies()
    video = str(assets / "videos/bgslibrary_highway_traffic_320x240.avi")
    spec = SourceSpec(video, realtime=True, policy=DropPolicy.LATEST)
    models = RunnerGraph([yolox_bundle], "slow", threads=1)
    pipeline = Pipeline([spec], [models], [sink])
    run_for(pipeline, 10.0)
    models.close()
    latencies = np.array(sink.latencies)
    quarter = len(latencies) // 4
    assert quarter >= 5, len(latencies)
    first, last = np.percentile(latencies[:quarter], 99), np.percentile(latencies[-quarter:], 99)
    assert last <= first * 1.5 + 0.1, (first, last)  # flat, not growing
    assert latencies.max() < 1.0  # ≤ one frame waiting + one in the model, never a backlog
    summary = pipeline.summary()
    assert summary["dropped"] > summary["frames"]  # the model keeps up with less than half the frames
    assert summary["dropped"] + summary["frames"] >= 0.8 * 25 * 10 - 25  # every frame is processed or counted
    assert np.all(np.diff(sink.frames) > 0)  # newest first never reorders
    growth_kb = sink.rss[-1] - sink.rss[quarter]
    assert growth_kb < 30_000, growth_kb  # memory flat: no frame backlog (30 MB slack for allocator noise)


def test_replay_with_a_slow_model_drops_nothing(yolox_bundle, tmp_path, assets):
    import cv2

    capture = cv2.VideoCapture(str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"))
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), capture.read()[1])
    sink = Latencies()
    workers = [RunnerGraph([yolox_bundle], "slow", threads=1) for _ in range(2)]
    pipeline = Pipeline([SourceSpec(str(tmp_path))], workers, [sink])
    pipeline.run()
    for models in workers:
        models.close()
    assert sink.frames == list(range(12))  # all, in order, although two workers finish out of order
    assert pipeline.summary()["dropped"] == 0

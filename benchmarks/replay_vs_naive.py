"""Replay fps against the naive loop, and live-mode latency at the file's own frame rate.

    python -m benchmarks.replay_vs_naive [--frames 400] [--repeat 2] [--live-seconds 40]

Naive loop: one process, read → letterbox → run → decode + NMS, one ONNX Runtime session with 2 threads.
Replay: the pipeline ``edge replay`` runs (decode ahead, two single-thread inference workers, in-order
dispatch), without file sinks, on the same frames. Runs alternate. Live: the file paced at its own rate
(10 fps) with the live drop policy; capture-to-result latency p50/p99 and the drop rate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from benchmarks._setup import BUNDLE, VIDEO, run_pipeline
from edge.model import ModelSet
from streams.board import DropPolicy
from streams.feed import SourceSpec


def naive(frames: int) -> float:
    models = ModelSet([BUNDLE], "auto", threads=2)
    capture = cv2.VideoCapture(VIDEO)
    started = time.perf_counter()
    for _ in range(frames):
        ok, image = capture.read()
        models(image)
    fps = frames / (time.perf_counter() - started)
    models.close()
    return fps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--live-seconds", type=float, default=40.0)
    args = parser.parse_args()
    ratios = []
    for _ in range(args.repeat):
        base = naive(args.frames)
        fps, _, _ = run_pipeline(SourceSpec(VIDEO), args.frames)
        ratios.append(fps / base)
        print(f"naive {base:6.2f} fps   replay pipeline {fps:6.2f} fps   ratio {fps / base:.2f}", flush=True)
    print(f"median ratio {statistics.median(ratios):.2f}")
    if args.live_seconds:
        spec = SourceSpec(VIDEO, realtime=True, policy=DropPolicy.LATEST)
        fps, counter, pipeline = run_pipeline(spec, None, seconds=args.live_seconds)
        latencies = np.array(counter.latencies) * 1e3
        dropped = pipeline.dropped
        print(f"live at 10 fps for {args.live_seconds:.0f} s: {counter.frames} results, {dropped} dropped "
              f"({dropped / max(1, dropped + counter.frames):.1%}), capture-to-result latency "
              f"p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms")


if __name__ == "__main__":
    main()

"""Replay fps against the naive loop in one run, and live-mode latency at the file's own frame rate.

    python -m benchmarks.replay_vs_naive [--frames 200] [--repeat 4] [--live-seconds 20] [--workers W --threads T]

Three ways through the same frames of ``one-by-one-person-detection.mp4`` with YOLOX-nano fp32, run in turn
``--repeat`` times so that load from other processes hits all three alike (the ratio is the median of the
per-round ratios); the runs and the naive loop are the runtime's own (:mod:`edge.bench.measure`, which
``edge bench`` measures with, tracking and drawing included there):

- naive: one process, read → letterbox → run → decode + NMS, one ONNX Runtime session with 2 threads;
- replay --no-video: the pipeline ``edge replay`` runs (decode ahead in a thread, parallel inference workers,
  in-order dispatch), with no file sinks, as the naive loop writes none;
- replay: the same with ``events.jsonl`` and the annotated video, as ``edge replay`` writes them.

Each line also gives the CPU milliseconds each frame cost the process: the naive loop leaves a core idle
while it decodes and pre/post-processes, the pipeline does not, so on an idle machine the ratio is about
naive wall time over half the pipeline's CPU time; on a machine other processes load, it tends to the ratio
of CPU times. Live: the file paced at its own rate (10 fps) with the live drop policy, through the default
worker layout and through one two-thread worker; capture-to-result latency p50/p99 and the drop rate.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks._setup import VIDEO, Measured, naive_yolox, run_yolox
from edge.pipeline.sinks import EventsSink, VideoSink
from streams.feed import SourceSpec
from streams.frame_queue import DropPolicy


def replay(frames: int, video: bool, workers: int | None, threads: int | None) -> Measured:
    with tempfile.TemporaryDirectory() as out:
        sinks = [EventsSink(Path(out) / "events.jsonl"), VideoSink(Path(out), several_streams=False)] if video else []
        measured, _ = run_yolox(SourceSpec(VIDEO), frames, workers=workers, threads=threads, sinks=sinks)
    return measured


def live(seconds: float, workers: int | None, threads: int | None) -> str:
    spec = SourceSpec(VIDEO, realtime=True, policy=DropPolicy.LATEST)
    measured, pipeline = run_yolox(spec, None, workers=workers, threads=threads, seconds=seconds)
    latency = pipeline.stats.latency_ms()["end_to_end"]
    dropped = pipeline.dropped
    return (f"{measured.frames} results, {dropped} dropped ({dropped / max(1, dropped + measured.frames):.1%}), "
            f"capture-to-result latency p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, help="replay's inference workers (default: the pipeline's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: the pipeline's)")
    args = parser.parse_args()
    runs = {"naive": lambda: naive_yolox(args.frames),
            "replay --no-video": lambda: replay(args.frames, False, args.workers, args.threads),
            "replay": lambda: replay(args.frames, True, args.workers, args.threads)}
    ratios: dict[str, list[float]] = {"replay --no-video": [], "replay": []}
    for round_ in range(args.repeat):
        measured = {name: run() for name, run in runs.items()}
        for name, m in measured.items():
            ratio = f"  {m.fps / measured['naive'].fps:.2f} × naive" if name in ratios else ""
            print(f"round {round_ + 1}  {name:18s} {m.fps:6.2f} fps  CPU {m.cpu_ms:5.1f} ms a frame{ratio}", flush=True)
            if name in ratios:
                ratios[name].append(m.fps / measured["naive"].fps)
    for name, values in ratios.items():
        print(f"median ratio {name:18s} {statistics.median(values):.2f}")
    if args.live_seconds:
        for label, workers, threads in (("default layout", args.workers, args.threads), ("1 worker × 2 threads", 1, 2)):
            print(f"live at 10 fps, {args.live_seconds:.0f} s, {label}: {live(args.live_seconds, workers, threads)}",
                  flush=True)


if __name__ == "__main__":
    main()

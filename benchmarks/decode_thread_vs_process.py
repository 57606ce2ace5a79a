"""Decode in a thread vs in a child process (shared-memory ring), inside the full replay pipeline.

    python -m benchmarks.decode_thread_vs_process [--frames 400] [--repeat 2]

Same video, same two inference workers; only where decoding runs differs. Runs alternate so that other
load on the machine hits both alike. Prints fps per run and the median per mode.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks._setup import VIDEO, run_yolox
from streams.feed import DecodeMode, SourceSpec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[float]] = {m.value: [] for m in DecodeMode}
    for _ in range(args.repeat):
        for mode in DecodeMode:
            measured, _ = run_yolox(SourceSpec(VIDEO), args.frames, decode=mode)
            results[mode.value].append(measured.fps)
            print(f"{mode.value:8s} {measured.frames} frames  {measured.fps:6.2f} fps  "
                  f"CPU {measured.cpu_ms:5.1f} ms a frame", flush=True)
    for mode, values in results.items():
        print(f"median {mode:8s} {statistics.median(values):6.2f} fps")


if __name__ == "__main__":
    main()

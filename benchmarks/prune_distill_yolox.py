"""Benchmark (not a test): YOLOX-nano (real COCO weights) through ONNX → PyTorch, pruned and distilled on the
shared sample footage for a fixed budget; prints MACs, CPU latency and mAP@0.5 against the teacher on
held-out frames, before pruning, after pruning and after distillation, with the exact command.

    python -m benchmarks.prune_distill_yolox [--prune 0.3] [--epochs 6] [--frames 160] [--out out/bench_yolox]

Numbers depend on the machine; the note quotes one run and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from edge.cli import main

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("EDGE_ASSETS", ROOT.parent / "shared" / "assets"))
FOOTAGE = ("videos/one-by-one-person-detection.mp4", "videos/bgslibrary_highway_traffic_320x240.avi")


def command(args: argparse.Namespace) -> list[str]:
    return ["compile", "--model", str(ASSETS / "models/detection/yolox_nano_416x416.onnx"), "--task", "detection",
            "--decoder", "yolox", "--labels", str(ASSETS / "models/detection/coco80.names"), "--color", "bgr",
            "--resize", "letterbox", "--pad-value", "114", "--name", "yolox_nano_pruned",
            "--prune", str(args.prune), "--prune-importance", args.importance,
            "--distill", *(str(ASSETS / f) for f in FOOTAGE), "--frames", str(args.frames),
            "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr), "--seed", "0",
            "--out", str(args.out)]


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", type=float, default=0.3)
    parser.add_argument("--importance", default="magnitude")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--out", default="out/bench_yolox")
    args = parser.parse_args()
    argv = command(args)
    print("edge " + shlex.join(argv), flush=True)
    started = time.monotonic()
    code = main(argv)
    print(f"wall time {time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs", flush=True)
    if code == 0:
        doc = json.loads((Path(args.out) / "bundle.json").read_text())
        print(json.dumps({k: v for k, v in doc["compile"].items() if k != "pruning"}, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(run())

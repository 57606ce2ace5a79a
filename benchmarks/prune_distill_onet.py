"""Benchmark (not a test): MTCNN's O-Net (real weights from ../shared/assets) pruned and distilled on the crops
the cascade shows it in the shared footage, for a fixed budget; prints parameters, MACs, CPU latency and
face / not-face top-1 agreement with the teacher on held-out crops, before pruning, after pruning and after
distillation, with the exact command.

    python -m benchmarks.prune_distill_onet [--prune 0.5] [--epochs 8] [--frames 400] [--out out/bench_onet]

O-Net only ever sees the cascade's candidates (faces and near-misses), so its training frames are those:
``compile.mtcnn.candidate_crops`` cuts them out of frames sampled from the footage (the same sampler as
calibration and distillation), and the compile command distils on that folder. Numbers depend on the
machine; the note quotes one run and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2

from calibration.frames import sample_frames
from compile.mtcnn import candidate_crops
from edge.bundle import load_bundle
from edge.cli import main
from edge.demo import find_assets

FOOTAGE = ("images", "videos/face-demographics-walking.gif", "videos/asl_again_person_upper_body.mkv")


def write_crops(assets: Path, folder: Path, frames: int) -> int:
    """The cascade's O-Net inputs from ``frames`` sampled frames, as PNGs in ``folder``; returns their count."""
    mtcnn = folder / "mtcnn"
    checkpoints = [f"--checkpoint={net}={assets / f'models/detection/mtcnn_{net}.pt'}"
                   for net in ("pnet", "rnet", "onet")]
    if main(["compile", "--model", "mtcnn", "--task", "detection", "--out", str(mtcnn), *checkpoints]) != 0:
        raise SystemExit("could not compile the MTCNN bundle")
    images = [f.image for f in sample_frames([str(assets / source) for source in FOOTAGE], frames)]
    crops = folder / "crops"
    crops.mkdir()
    found = candidate_crops(load_bundle(mtcnn), images)
    for i, crop in enumerate(found):
        cv2.imwrite(str(crops / f"{i:05d}.png"), crop)
    return len(found)


def command(assets: Path, crops: Path, args: argparse.Namespace) -> list[str]:
    return ["compile", "--model", "mtcnn_onet", "--task", "classification",
            "--checkpoint", str(assets / "models/detection/mtcnn_onet.pt"), "--prune", str(args.prune),
            "--distill", str(crops), "--frames", str(args.crops), "--epochs", str(args.epochs),
            "--batch", str(args.batch), "--lr", str(args.lr), "--seed", "0", "--out", str(args.out)]


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=400, help="frames sampled from the footage for crops")
    parser.add_argument("--crops", type=int, default=600, help="at most this many crops train and hold out")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--out", default="out/bench_onet")
    args = parser.parse_args()
    assets = find_assets()
    with tempfile.TemporaryDirectory(prefix="edge-onet-") as folder:
        count = write_crops(assets, Path(folder), args.frames)
        print(f"{count} O-Net candidate crops from {args.frames} sampled frames of {', '.join(FOOTAGE)}", flush=True)
        argv = command(assets, Path(folder) / "crops", args)
        print("edge " + shlex.join(argv), flush=True)
        started = time.monotonic()
        code = main(argv)
    print(f"wall time {time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs", flush=True)
    if code == 0:
        report = json.loads((Path(args.out) / "bundle.json").read_text())["compile"]["report"]
        print(json.dumps(report, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(run())

"""Benchmark (not a test): YOLOX-nano (real COCO weights) through ONNX → PyTorch, pruned, reconstructed and
distilled on the shared sample footage within a training time budget; prints MACs, CPU latency and mAP@0.5
(class-aware and class-agnostic) against the teacher on held-out frames after every stage, the teacher's noise
floor, and the curve agreement vs training time, with the exact command.

    python -m benchmarks.prune_distill_yolox [--prune 0.3] [--macs 0.6] [--minutes 30] [--curve 3]
        [--importance contribution] [--round-to 8] [--batch 32] [--lr 6e-3] [--schedule wsd|cosine|constant]
        [--warmup 100] [--no-rect] [--seed 0] [--out out/bench_yolox]

The result, 30 % pruned within 0.6x MACs (0.578x), 30 minutes on a 2-core AMD EPYC: class-agnostic mAP@0.5
0.951 [0.932, 0.966] against the teacher on the 78 held-out frames, whose own noise floor there is 0.990; 0.970
on its training frames. Curve (training s: agreement): 207: .933, 392: .949, 763: .954, 1138: .951, 1511: .935,
1692: .955. With ``--seed 1`` it ended at 0.949 [0.934, 0.962] (0.961 on the training frames; curve 214: .934,
403: .940, 778: .940, 1154: .939, 1532: .943, 1722: .950); the same settings in an earlier run at 0.954, batch 8
at 3e-3 at 0.950. The students sit at the 0.95 the issue asks for, not clearly above it: 20 % pruned
(0.735x MACs, below) reaches only 0.955, so what holds them there is the footage, not their size.

The class-agnostic score counts each object once (:func:`calibration.agreement._agnostic`). Counting every box,
as it did before, the same four students score 0.937, 0.931, 0.939 and 0.928, the teacher against itself 0.985:
YOLOX's per-class NMS lets the teacher name vehicles twice (33 pairs, car and truck 24, bus and truck 7, car and
bus 2, at IoU 0.86-0.98; 60 of its 414 boxes), and a student that found such a vehicle once was charged a
miss. Every 0.92-0.94 quoted below was measured that way; each of the seven 30-minute runs re-scored rose by
0.011 to 0.027.

``--batch 32 --lr 6e-3`` are the defaults since that earlier run: 0.939 against batch 8's 0.928 counting every box.
``--lr 3e-3`` at batch 8 was the rate that learned most in 30 minutes: 0.928 against 0.915 at 1e-3 and 0.909
at 1e-2, where the full rate's steps are too noisy for the decay to settle.

``--rect`` (the default; ``--no-rect`` turns it off) distils on 416x320 canvases, which hold both clips
letterboxed, instead of 416x416: 1.33x the steps in the same 30 minutes (56 epochs against 42), and a student
ahead of the full canvas's at every point of the curve (0.914 against 0.898 after ~10 minutes, 0.927 against
0.911 after ~14, 0.922 against 0.913 after ~21), ending at 0.927 against 0.923, within the interval; both runs
one after the other on one machine.

More steps do not help past ~10 minutes. On a machine with 1.6x the training speed (89 epochs, ~3,550 steps in
the 30 minutes) the curve was flat from the seventh minute on (0.918 after 410 s, 0.924 after 800 s, 0.916 after
1355 s) and ended at 0.928 [0.908, 0.944]; the same student agrees 0.960 on the training frames it learned from
(printed last). Pruned only 20 % (``--prune 0.2 --macs 0.75``: 0.735x MACs) it ended at 0.944 [0.931, 0.958]
(0.955 counting each object once), 0.974 on its training frames, on the same machine. What is lost is ranking,
not finding: all but 2 of the teacher's 414 boxes on the held-out frames have a student box at IoU 0.5 (30 % run);
the misses are its borderline boxes (scores 0.3 to 0.6, mostly small cars) that the student scores lower, and the
student's own boxes above 0.3 where the teacher has none (38).

Neither do more frames of the same footage (the sampler's near-duplicates kept by a one-off patch, not an option:
960 training frames instead of 322; 0.924 after a 10-minute one-thread run, 0.929 with the usual frames) or plain
frames only (``--views 1``: 0.921, 0.960 on its training frames).

``--round-to 8`` (``edge compile --prune-round-to 8``) keeps every pruned layer's channel count a multiple of 8.
Unrounded, 30 % of YOLOX-nano's 16..256 channels leaves 11, 22, 44, 89 and 179, which CPU and TensorRT kernels
pad back up: the 0.578x-MACs student runs at 0.92x the original's latency. Rounded, within the same budget
(0.541x MACs, 16 groups spared; batch 8), it ends at 0.942 [0.930, 0.958] after 30 minutes (0.927 counting every
box), 0.962 on its training frames, within the interval of the unrounded one at batch 8 (0.950), and runs at
0.78x (ONNX Runtime, one thread, 75 interleaved runs of each model). At the defaults (batch 32) it ends at 0.945
[0.933, 0.961], 0.965 on its training frames, and its report reads 0.88x the original's latency (default
threads, the stages timed in turns).

``--macs 0.6`` (the issue's budget) spares the channel groups costliest to prune while the model stays within
0.6x the original's MACs (``edge compile --prune-macs``); ``--macs 0`` prunes every group alike.

The footage: the two clips whose scenes YOLOX-nano finds objects in (people in a room, 0-1 a frame; highway
traffic, 4-8 cars a frame). Training uses the first four fifths of each clip's sampled frames, the report
scores the last fifth (``--holdout-split end``): footage recorded after everything trained on, as a camera's
next hours would be. Numbers depend on the machine and its load; the note quotes one run, the load and the
machine it ran on (``uptime`` before and after is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from calibration.agreement import Agreement, agreement
from calibration.frames import sample_frames
from calibration.measure import candidate_bundle, predictions
from compile.compress import split_end
from compile.distill import DistillConfig
from edge.bundle import load_bundle
from edge.cli import main

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("EDGE_ASSETS", ROOT.parent / "shared" / "assets"))
MODEL = "models/detection/yolox_nano_416x416.onnx"
FOOTAGE = ("videos/one-by-one-person-detection.mp4", "videos/bgslibrary_highway_traffic_320x240.avi")
TRAINING_SAMPLE = 4  # the training agreement scores every 4th training frame


def command(args: argparse.Namespace) -> list[str]:
    return ["compile", "--model", str(ASSETS / MODEL), "--task", "detection",
            "--decoder", "yolox", "--labels", str(ASSETS / "models/detection/coco80.names"), "--color", "bgr",
            "--resize", "letterbox", "--pad-value", "114", "--name", "yolox_nano_pruned",
            "--prune", str(args.prune), "--prune-importance", args.importance,
            *(["--prune-macs", str(args.macs)] if args.macs else []),
            *(["--prune-round-to", str(args.round_to)] if args.round_to else []),
            "--distill", *(str(ASSETS / f) for f in FOOTAGE), "--frames", str(args.frames),
            "--holdout-split", "end", "--epochs", str(args.epochs), "--distill-minutes", str(args.minutes),
            "--curve", str(args.curve), "--batch", str(args.batch), "--lr", str(args.lr),
            "--lr-schedule", args.schedule, "--lr-warmup", str(args.warmup), *(["--rect"] if args.rect else []),
            "--seed", str(args.seed), "--out", str(args.out)]


def training_agreement(out: Path, frames: int) -> Agreement:
    """The student against the teacher on every ``TRAINING_SAMPLE``-th training frame, un-augmented, scored as the
    held-out frames are: beside the held-out score it tells how much of the shortfall is fitting the footage
    trained on and how much is carrying that over to footage recorded later."""
    bundle = load_bundle(out)
    train, _ = split_end(sample_frames([str(ASSETS / f) for f in FOOTAGE], frames), DistillConfig.holdout)
    images = [f.image for f in train][::TRAINING_SAMPLE]
    reference = predictions(bundle, images, model=ASSETS / MODEL)
    return agreement(bundle.task, reference, predictions(candidate_bundle(bundle), images))


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", type=float, default=0.3)
    parser.add_argument("--macs", type=float, default=0.6, help="MAC budget, share of the original (0: uniform)")
    parser.add_argument("--importance", default="contribution", help="magnitude, taylor or contribution")
    parser.add_argument("--round-to", type=int, default=0,
                        help="keep channel counts multiples of this (edge compile --prune-round-to; 0: off)")
    parser.add_argument("--minutes", type=float, default=30.0, help="distillation time budget")
    parser.add_argument("--curve", type=float, default=3.0, help="score the student every this many minutes")
    parser.add_argument("--epochs", type=int, default=1000, help="at most this many epochs")
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-3, help="relative to each tensor's scale (compile.distill)")
    parser.add_argument("--schedule", default="wsd", help="learning rate schedule: wsd, cosine or constant")
    parser.add_argument("--warmup", type=int, default=100, help="optimizer steps the rate rises over")
    parser.add_argument("--rect", action=argparse.BooleanOptionalAction, default=True,
                        help="distil on canvases without the letterbox's grey bands (edge compile --rect)")
    parser.add_argument("--seed", type=int, default=0, help="initial random state of sampling and augmentation")
    parser.add_argument("--out", default="out/bench_yolox")
    args = parser.parse_args()
    argv = command(args)
    print("edge " + shlex.join(argv), flush=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    started = time.monotonic()
    code = main(argv)
    print(f"wall time {time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs; load average after: "
          f"{os.getloadavg()}", flush=True)
    if code == 0:
        block = json.loads((Path(args.out) / "bundle.json").read_text())["compile"]
        if "spared" in block["pruning"]:
            print(f"spared channel groups: {', '.join(block['pruning']['spared']) or 'none'}")
        print("training s  epoch  threads  loss      agreement (class-aware / class-agnostic mAP@0.5)")
        for epoch in block["distillation"]["epochs_run"]:
            found = epoch.get("agreement")
            if found:
                print(f"{epoch['seconds']:>10.0f}  {epoch['epoch']:>5}  {epoch['threads']:>7}  {epoch['loss']:<8.4f}  "
                      f"{found.get('class-aware mAP@0.5', 0):.3f} / {found.get('class-agnostic mAP@0.5', 0):.3f}")
        for row in block["report"]["rows"]:
            details = row["details"]
            print(f"{row['stage']}: MACs {row['macs'] / block['report']['rows'][0]['macs']:.3f}x, "
                  + (f"class-aware {details['class-aware mAP@0.5'][0]:.3f}, class-agnostic "
                     f"{details['class-agnostic mAP@0.5'][0]:.3f}" if details else f"agreement {row['agreement']}"))
        found = training_agreement(Path(args.out), args.frames)
        print(f"distilled, on every {TRAINING_SAMPLE}th training frame: {found.describe()}")
    return code


if __name__ == "__main__":
    sys.exit(run())

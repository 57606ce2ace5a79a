"""Benchmark (not a test): where one distillation step of YOLOX-nano goes, at batch 8 on the CPU.

Profiles the parts of a step on the same batch of real frames (the shared footage, the shared sampler):
augmentation, teacher forward, student forward, loss, backward, optimizer step; then times whole steps of
:class:`compile.distill.Distiller` and reports step / (teacher forward + student forward/backward alone) and
images per second. Also prints torch's intra- and inter-op thread counts and how much CPU other processes
used meanwhile (from /proc/stat, this process's own time subtracted), since on a shared machine that decides
how many threads pay.

    python -m benchmarks.prune_distill_step [--prune 0.3] [--batch 8] [--steps 6] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

from benchmarks._setup import ASSETS, BUNDLE
from calibration.frames import sample_frames
from compile.augment import Augment, frame_tensors
from compile.distill import DistillConfig, Distiller, as_tuple
from compile.families import bundle_network
from compile.losses import task_loss
from compile.prune import PruneConfig, prune

FOOTAGE = ("videos/one-by-one-person-detection.mp4", "videos/bgslibrary_highway_traffic_320x240.avi")


def others_busy_cores(since: tuple[float, float, float]) -> float:
    """Cores' worth of CPU that other processes used since ``since`` (a :func:`cpu_clock` reading)."""
    wall, busy, own = cpu_clock()
    return max(0.0, ((busy - since[1]) - (own - since[2])) / max(wall - since[0], 1e-9))


def cpu_clock() -> tuple[float, float, float]:
    """(wall s, busy CPU s of the whole machine, this process's CPU s)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    times = os.times()
    return time.monotonic(), busy, times.user + times.system


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", type=float, default=0.3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher, student = bundle_network(BUNDLE), bundle_network(BUNDLE)
    prune(student.module, student.example(), PruneConfig(args.prune))
    frames = frame_tensors([f.image for f in sample_frames([str(ASSETS / f) for f in FOOTAGE], 4 * args.batch)])
    batch = frames[:args.batch]
    augment = Augment(teacher.input, mixup=False)
    loss = task_loss("yolox", 2.0, [(1, 3549, 85)], (teacher.input.width, teacher.input.height))
    config = DistillConfig(sources=("footage",), batch=args.batch, device="cpu")
    distiller = Distiller(teacher.module, student.module, loss, augment, config, lambda name: False)
    distiller.student.train()
    clock = cpu_clock()
    images = augment(batch)
    with torch.no_grad():
        targets = as_tuple(distiller.teacher(images))

    def student_forward_backward():
        distiller.student.zero_grad(set_to_none=True)
        loss(as_tuple(distiller.student(images)), targets).backward()

    distiller._step(images)  # warm-up, and makes the optimizer
    parts = {"augment": median_time(lambda: augment(batch), args.steps)}
    with torch.no_grad():
        parts["teacher forward"] = median_time(lambda: distiller.teacher(images), args.steps)
        parts["student forward"] = median_time(lambda: distiller.student(images), args.steps)
        outputs = as_tuple(distiller.student(images))
        parts["loss"] = median_time(lambda: loss(outputs, targets), args.steps)
    parts["student forward+loss+backward"] = median_time(student_forward_backward, args.steps)
    parts["optimizer step"] = median_time(distiller.optimizer.step, args.steps)
    alone = parts["teacher forward"] + parts["student forward+loss+backward"]
    step = median_time(lambda: distiller._step(augment(frames[:args.batch])), args.steps)
    busy = others_busy_cores(clock)
    print(f"torch {torch.__version__}: intra-op threads {torch.get_num_threads()}, inter-op threads "
          f"{torch.get_num_interop_threads()}, {os.cpu_count()} CPUs; other processes used {busy:.2f} cores "
          f"meanwhile (load average {os.getloadavg()[0]:.2f})")
    print(f"{'part (batch ' + str(args.batch) + ', median of ' + str(args.steps) + ')':<40} {'s':>7}")
    for name, seconds in parts.items():
        print(f"{name:<40} {seconds:>7.3f}")
    print(f"{'teacher + student alone':<40} {alone:>7.3f}")
    print(f"{'whole step (augment + Distiller._step)':<40} {step:>7.3f}   {step / alone:.2f}x alone, "
          f"{args.batch / step:.1f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(run())

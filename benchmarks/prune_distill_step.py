"""Benchmark (not a test): where one distillation step of YOLOX-nano goes, at batch 8 on the CPU.

Profiles the parts of a step on the same batch of real frames (the shared footage, the shared sampler):
augmentation, teacher forward, student forward, loss, backward, optimizer step; then times whole steps of
:class:`compile.distill.Distiller` — the old loop (fresh augmentation and a teacher pass every step) and the
teacher cache cold and warm — and reports step / (teacher forward + student forward/backward alone) and
images per second, at every core and at the thread count :mod:`compile.threads` chooses. Also prints
torch's intra- and inter-op thread counts and how much CPU other processes used meanwhile (from /proc/stat,
this process's own time subtracted), since on a shared machine that decides how many threads pay.

    python -m benchmarks.prune_distill_step [--prune 0.3] [--batch 8] [--steps 5] [--threads N ...]
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
from compile.augment import Augment
from compile.distill import DistillConfig, Distiller, as_tuple
from compile.families import bundle_network
from compile.losses import task_loss
from compile.prune import PruneConfig, prune
from compile.teacher_cache import TeacherCache
from compile.threads import ThreadChooser, usable_cores

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


def profile(distiller: Distiller, augment: Augment, frames: list, loss, args: argparse.Namespace) -> None:
    """The parts of one step on one batch, then whole steps: fresh augmentation and teacher every step (the
    old loop), and the teacher cache cold (first epoch) and warm (later epochs)."""
    batch = frames[:args.batch]
    images = augment(batch)
    with torch.no_grad():
        targets = as_tuple(distiller.teacher(images))

    def student_forward_backward():
        distiller.student.zero_grad(set_to_none=True)
        loss(as_tuple(distiller.student(images)), targets).backward()

    distiller._step(images)  # warm-up, and makes the optimizer
    clock = cpu_clock()
    parts = {"augment": median_time(lambda: augment(batch), args.steps)}
    with torch.no_grad():
        parts["teacher forward"] = median_time(lambda: distiller.teacher(images), args.steps)
        parts["student forward"] = median_time(lambda: distiller.student(images), args.steps)
        outputs = as_tuple(distiller.student(images))
        parts["loss"] = median_time(lambda: loss(outputs, targets), args.steps)
    parts["student forward+loss+backward"] = median_time(student_forward_backward, args.steps)
    parts["optimizer step"] = median_time(distiller.optimizer.step, args.steps)
    alone = parts["teacher forward"] + parts["student forward+loss+backward"]
    cache = TeacherCache(distiller.teacher, augment, frames, views=1, seed=0, device=distiller.device)
    indices = list(range(args.batch))
    steps = {
        "fresh augmentation + teacher (old loop)": median_time(lambda: distiller._step(augment(batch)), args.steps),
        "cached views, cold (teacher runs)": median_time(
            lambda: distiller._step(*TeacherCache(distiller.teacher, augment, frames, views=1, seed=0,
                                                  device=distiller.device).batch(indices)), args.steps),
        "cached views, warm (later epochs)": median_time(lambda: distiller._step(*cache.batch(indices)), args.steps),
    }
    print(f"intra-op threads {torch.get_num_threads()}, inter-op threads {torch.get_num_interop_threads()}, "
          f"{os.cpu_count()} CPUs; other processes used {others_busy_cores(clock):.2f} cores meanwhile "
          f"(load average {os.getloadavg()[0]:.2f})")
    print(f"{'part (batch ' + str(args.batch) + ', median of ' + str(args.steps) + ')':<44} {'s':>7}")
    for name, seconds in parts.items():
        print(f"{name:<44} {seconds:>7.3f}")
    print(f"{'teacher + student alone':<44} {alone:>7.3f}")
    for name, seconds in steps.items():
        print(f"{name:<44} {seconds:>7.3f}   {seconds / alone:.2f}x alone, {args.batch / seconds:.1f} images/s")


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", type=float, default=0.3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+",
                        help="thread counts to profile (default: all cores, then what compile.threads chooses)")
    args = parser.parse_args()
    teacher, student = bundle_network(BUNDLE), bundle_network(BUNDLE)
    prune(student.module, student.example(), PruneConfig(args.prune))
    frames = [f.image for f in sample_frames([str(ASSETS / f) for f in FOOTAGE], 4 * args.batch)]
    augment = Augment(teacher.input, mixup=False)
    loss = task_loss("yolox", 2.0, [(1, 3549, 85)], (teacher.input.width, teacher.input.height))
    config = DistillConfig(sources=("footage",), batch=args.batch, device="cpu")
    distiller = Distiller(teacher.module, student.module, loss, augment, config, lambda name: False)
    distiller.student.train()
    print(f"torch {torch.__version__}, YOLOX-nano pruned {args.prune:.0%}, batch {args.batch}")
    for threads in args.threads or [usable_cores(), ThreadChooser().choose()]:
        torch.set_num_threads(threads)
        profile(distiller, augment, frames, loss, args)
    return 0


if __name__ == "__main__":
    sys.exit(run())

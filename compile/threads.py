"""How many CPU threads a PyTorch training loop should use on a machine it may share.

PyTorch's intra-op pool defaults to one thread per core, and every operator ends at a barrier where all of
them must arrive. When another process holds one of those cores, the thread that shares it arrives a
scheduler time slice late at every barrier; with the thousands of small operators of a detector's step, a
distillation step of YOLOX-nano at batch 8 measured 3.5x *slower* with two threads than with one on this
2-core machine while other jobs used about 1.5 cores (``benchmarks/prune_distill_step.py``). So the loop takes
only the cores other processes leave free: it measures their CPU time from ``/proc/stat`` (the machine's busy
time minus this process's own) over a window, and rounds the free cores down, with a small tolerance for
background noise. Where ``/proc/stat`` does not exist (not Linux), every core is taken.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")
TOLERANCE = 0.25  # cores of other work (daemons, a shell) that still count as a free core
FIRST_WINDOW_S = 0.5  # how long the first choice watches the machine


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ThreadChooser:
    """Chooses a thread count from what other processes used since the previous choice (or, the first time,
    during a short wait)."""

    def __init__(self):
        self.mark = _clock()
        self.others = 0.0  # cores' worth of CPU other processes used in the last window

    def choose(self) -> int:
        cores = usable_cores()
        if self.mark is None:
            return cores
        if time.monotonic() - self.mark[0] < FIRST_WINDOW_S:
            time.sleep(FIRST_WINDOW_S)
        now = _clock()
        wall, busy, own = (b - a for a, b in zip(self.mark, now))
        self.mark = now
        self.others = max(0.0, (busy - own) / max(wall, 1e-9))
        return max(1, min(cores, int(cores - self.others + TOLERANCE)))


def _clock() -> tuple[float, float, float] | None:
    """(wall s, busy CPU s of the whole machine, this process's CPU s), or None without ``/proc/stat``."""
    try:
        fields = [int(v) for v in PROC_STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle and iowait
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user … steal; guest time is inside user
    times = os.times()
    return time.monotonic(), busy, times.user + times.system

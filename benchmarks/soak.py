"""Soak: the daemon for a long time on a looped file source at the fastest rate plus a flapping network camera;
resident memory, open file descriptors, threads and p99 latency at the start and at the end. Not a test.

    python -m benchmarks.soak [--minutes 30] [--json soak.json]

The daemon runs in this process (``edge.daemon.Daemon``, the code ``edge run`` runs), so its histograms can be
read per window: p99 is the end-to-end latency (capture → sinks done) of the frames of one window, from the
difference of the pipeline's constant-memory histograms between two samples. The file source is
``reconnect: true`` with ``realtime: false``: it is read as fast as inference takes it and reopened each time
it ends. The camera is the tests' MJPEG server on loopback, killed and restarted (up ``UP_S``, down
``DOWN_S``), so the feed reconnects all along. Events are rotated (1 MiB, 2 backups) and the video is off,
as for a weeks-long run, so the disk does not grow.

"Start" is the window after the first ``WARMUP_S`` (sessions, arenas and caches settled), "end" the last
window. Goals (issue 13): RSS growth < 5 %, fds and threads flat, p99 drift < 10 %. The machine is shared:
the load average is printed with each sample, to say what else ran.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._setup import ASSETS, BUNDLE
from edge.config import DaemonConfig, EventsConfig, HttpConfig, SourceConfig
from edge.daemon import Daemon
from edge.logs import quiet_native_logs
from edge.metrics import LatencyHistogram
from streams.feed import Backoff
from tests.helpers.servers import MjpegCamera

ROOT = Path(__file__).resolve().parents[1]
CAMERA_VIDEO = ASSETS / "videos/bgslibrary_highway_traffic_320x240.avi"
FILE_VIDEO = ASSETS / "videos/bgslibrary_highway_traffic_320x240.avi"
WARMUP_S = 120.0
SAMPLE_S = 60.0
UP_S, DOWN_S = 20.0, 10.0


def process_sample() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir("/proc/self/fd")), "load1": os.getloadavg()[0]}


def end_to_end(daemon: Daemon) -> list[np.ndarray]:
    """The end-to-end histogram counts of each stream, copied."""
    return [s.times.stages["end_to_end"].counts.copy() if "end_to_end" in s.times.stages else
            np.zeros_like(LatencyHistogram().counts) for s in daemon.pipeline.stats.streams]


def window_p99(before: list[np.ndarray], after: list[np.ndarray]) -> dict[str, float]:
    p99 = {}
    for name, old, new in zip(("file", "camera"), before, after):
        histogram = LatencyHistogram()
        histogram.counts = new - old
        p99[name] = round(histogram.percentile_ms(99), 1)
        p99[f"{name}_frames"] = int(histogram.count)
    return p99


def flap(camera: MjpegCamera, stop: threading.Event) -> None:
    while not stop.wait(UP_S):
        camera.kill()
        if stop.wait(DOWN_S):
            return
        camera.start()


def monitor(daemon: Daemon, args: argparse.Namespace, samples: list[dict], stop: threading.Event) -> None:
    deadline = time.monotonic() + args.minutes * 60
    stop.wait(args.warmup_s)
    previous = end_to_end(daemon)
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(min(args.sample_s, max(0.0, deadline - time.monotonic())))
        current = end_to_end(daemon)
        sample = {"t_s": round(time.monotonic() - daemon.pipeline.started), **process_sample(),
                  **window_p99(previous, current),
                  "reconnects": daemon.pipeline.feeds[1].reconnects, "frames": daemon.pipeline.frames}
        previous = current
        samples.append(sample)
        print(json.dumps(sample), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own handler stops it, as systemd would


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=WARMUP_S, help="before the first sample")
    parser.add_argument("--sample-s", type=float, default=SAMPLE_S, help="window of each sample")
    parser.add_argument("--json", help="write the samples and the start/end comparison here")
    args = parser.parse_args()
    quiet_native_logs()  # as the edge command does
    camera = MjpegCamera(CAMERA_VIDEO).start()
    out = Path(tempfile.mkdtemp(prefix="edge-soak-"))
    config = DaemonConfig(
        bundles=[str(BUNDLE.root)], out=str(out), video=False, workers=2,
        sources=[SourceConfig(url=str(FILE_VIDEO), name="file", realtime=False, reconnect=True),
                 SourceConfig(url=camera.url, name="camera", timeout_s=2.0)],
        events=EventsConfig(max_mb=1.0, backups=2), http=HttpConfig(port=0),
        reconnect=Backoff(first_s=0.05, cap_s=2.0))
    daemon = Daemon(config)
    samples: list[dict] = []
    stop = threading.Event()
    threads = [threading.Thread(target=flap, args=(camera, stop), daemon=True),
               threading.Thread(target=monitor, args=(daemon, args, samples, stop), daemon=True)]
    print(f"soak: {args.minutes:g} min, out {out}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
          flush=True)
    for thread in threads:
        thread.start()
    try:
        code = daemon.run()
    finally:
        stop.set()
        camera.kill()
    summary = daemon.pipeline.summary()
    if len(samples) < 2:
        print("too short for a start/end comparison")
        return code
    start, end = samples[0], samples[-1]
    result = {
        "start": start, "end": end,
        "rss_growth_pct": round(100 * (end["rss_mib"] / start["rss_mib"] - 1), 2),
        "fds": [start["fds"], end["fds"]], "threads": [start["threads"], end["threads"]],
        "p99_drift_pct": {name: round(100 * (end[name] / start[name] - 1), 1) for name in ("file", "camera")
                          if start[name] > 0 and end[name] > 0},
        "frames": summary["frames"], "reconnects": summary["streams"]["camera"]["reconnects"], "exit": code,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, **result}, indent=2) + "\n")
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

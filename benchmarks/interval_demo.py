"""The demo's three bundles with and without ``interval: 3`` on ESPNetv2: the combined replay rate, in one run.

    python -m benchmarks.interval_demo [--frames 300] [--rounds 3]

The demo's replay (YOLOX-nano, ESPNetv2, MoveNet top-down on YOLOX's people) over the first ``--frames`` frames of
``one-by-one-person-detection.mp4`` (an image folder, so both configurations read the same decoded frames), with
every bundle on every frame and with ESPNetv2 on every third frame (what ``edge demo`` runs), in turn ``--rounds``
times so that load from other processes hits both alike; the ratio is the median of the per-round ratios of the
replays' frames per second. It also checks, from the events, that detection and pose were inferred on every frame.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import cv2

from benchmarks._setup import ASSETS, VIDEO
from edge.config import RunConfig
from edge.demo import INTERVAL, demo_bundles
from edge.replay import replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bundles = demo_bundles(ASSETS, Path(tempfile.gettempdir()) / "edge-bench-bundles")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "frames"
        source.mkdir()
        capture = cv2.VideoCapture(VIDEO)
        for i in range(args.frames):
            ok, image = capture.read()
            assert ok, "the video is shorter than --frames"
            cv2.imwrite(str(source / f"{i:05d}.png"), image)
        ratios = []
        for n in range(args.rounds):
            fps = {}
            for name, interval in (("every frame", {}), ("interval", INTERVAL)):
                out = Path(tmp) / f"out-{n}-{len(interval)}"
                summary = replay(str(source), RunConfig(bundles=[str(b.root) for b in bundles], out=str(out),
                                                        video=False, interval=interval))
                fps[name] = summary["fps"]
                events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
                carried = {b for e in events for b, r in e["results"].items() if r.get("inferred", True) is False}
                print(f"round {n}, {name}: {summary['fps']:.2f} fps; carried on some frames: {sorted(carried) or '-'}")
                assert carried == set(interval), "detection and pose must run on every frame"
            ratios.append(fps["interval"] / fps["every frame"])
    print(f"fps with {INTERVAL} / fps with every bundle on every frame: {statistics.median(ratios):.3f} "
          f"(median of {args.rounds}: {', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()

"""``edge demo``: the sample models on the sample footage, offline, on the CPU.

Builds the bundles it needs from the shared assets (once; later runs reuse them), replays the sample
video and prints what it found and where the output is.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.bundle import Thresholds, load_bundle
from edge.bundle_create import create_bundle
from edge.errors import BadInputError
from edge.replay import replay

DEMO_VIDEO = "videos/one-by-one-person-detection.mp4"
YOLOX = "models/detection/yolox_nano_416x416.onnx"


def find_assets(explicit: str | None = None) -> Path:
    """The assets folder: ``--assets``, else ``$EDGE_ASSETS``, else ``../shared/assets`` beside the checkout
    or the current folder."""
    if explicit or os.environ.get("EDGE_ASSETS"):
        candidates = [Path(explicit or os.environ["EDGE_ASSETS"])]
    else:
        checkout = Path(__file__).resolve().parents[1]
        candidates = [checkout.parent / "shared" / "assets", Path.cwd().parent / "shared" / "assets"]
    for folder in candidates:
        if (folder / DEMO_VIDEO).is_file():
            return folder
    raise BadInputError(f"{candidates[0]}: demo assets not found (need {DEMO_VIDEO}); point to them with "
                        f"--assets DIR or EDGE_ASSETS=DIR")


def yolox_bundle(assets: Path, out: Path):
    """The YOLOX-nano COCO bundle, as the MANIFEST describes the export (BGR, 0..255, letterbox top-left)."""
    folder = out / "yolox_nano"
    if (folder / "bundle.json").is_file():
        try:
            return load_bundle(folder)
        except BadInputError:
            pass  # stale or damaged: rebuild it below
    return create_bundle(assets / YOLOX, folder, task="detection", decoder="yolox", name="yolox_nano",
                         labels=assets / "models/detection/coco80.names", thresholds=Thresholds(0.3, 0.45),
                         color="bgr", resize="letterbox", pad_value=114.0)


def run_demo(out: str | Path = "out/demo", assets: str | None = None) -> int:
    folder = find_assets(assets)
    out = Path(out)
    bundle = yolox_bundle(folder, out / "bundles")
    video = folder / DEMO_VIDEO
    print(f"edge demo: {bundle.name} on {video.name} (footage: Intel IoT DevKit sample-videos, CC-BY-4.0)")
    summary = replay(str(video), [bundle.root], out)
    print(f"  {summary['frames']} frames in {summary['wall_s']:.1f} s: {summary['fps']:.1f} fps "
          f"({summary['backend']}, {summary['precision']})")
    found = ", ".join(f"{label} {count}" for label, count in summary["labels"].items()) or "nothing"
    print(f"  detections: {found}")
    print("  latency p50/p99 ms: " + ", ".join(
        f"{stage} {v['p50']:.1f}/{v['p99']:.1f}" for stage, v in summary["latency_ms"].items()))
    print(f"  output: {out}/events.jsonl, {out}/annotated.mp4, {out}/summary.json")
    return 0

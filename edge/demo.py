"""``edge demo``: detection, segmentation and pose together on the sample footage, offline, on the CPU.

Builds the bundles it needs from the shared assets (once; later runs reuse them): YOLOX-nano (COCO
detection), ESPNetv2 (VOC segmentation) and MoveNet run top-down on YOLOX's people. Then it replays the
sample video through all three (each frame decoded once) and prints what it found and where the output is.
ESPNetv2, the slowest, runs on every third frame (``interval``; a room's walls and floor change slowly), its
last map carried in between; detection and pose run on every frame (``benchmarks/interval_demo.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edge.bundle import Bundle, Thresholds, load_bundle
from edge.bundle.create import create_bundle
from edge.config import RunConfig
from edge.errors import BadInputError
from edge.preprocess import IMAGENET_MEAN, IMAGENET_STD
from edge.replay import replay

DEMO_VIDEO = "videos/one-by-one-person-detection.mp4"
YOLOX = "models/detection/yolox_nano_416x416.onnx"
ESPNET = "models/segmentation/espnetv2_s1.0_voc21_384x384.onnx"
MOVENET = "models/pose/movenet_singlepose_lightning_int8_192x192.onnx"
INTERVAL = {"espnetv2_voc": 3}
VOC_LABELS = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
              "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
              "tvmonitor")


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


def _reuse_or_create(folder: Path, create: Callable[[], Bundle]) -> Bundle:
    if (folder / "bundle.json").is_file():
        try:
            return load_bundle(folder)
        except BadInputError:
            pass  # stale or damaged: rebuild it below
    return create()


def yolox_bundle(assets: Path, out: Path) -> Bundle:
    """The YOLOX-nano COCO bundle, as the MANIFEST describes the export (BGR, 0..255, letterbox top-left)."""
    folder = out / "yolox_nano"
    return _reuse_or_create(folder, lambda: create_bundle(
        assets / YOLOX, folder, task="detection", decoder="yolox", name="yolox_nano",
        labels=assets / "models/detection/coco80.names", thresholds=Thresholds(0.3, 0.45), color="bgr",
        resize="letterbox", pad_value=114.0, overwrite=True))


def espnet_bundle(assets: Path, out: Path) -> Bundle:
    """ESPNetv2 VOC-21 (RGB, ImageNet normalisation, plain resize to 384 × 384), per-pixel argmax."""
    folder = out / "espnetv2_voc"
    return _reuse_or_create(folder, lambda: create_bundle(
        assets / ESPNET, folder, task="segmentation", decoder="softmax", name="espnetv2_voc", labels=VOC_LABELS,
        color="rgb", resize="stretch", mean=IMAGENET_MEAN, std=IMAGENET_STD, overwrite=True))


def movenet_bundle(assets: Path, out: Path, detector: str = "yolox_nano") -> Bundle:
    """MoveNet Lightning (NHWC uint8 RGB) run top-down on the ``detector`` bundle's people."""
    folder = out / "movenet_topdown"
    return _reuse_or_create(folder, lambda: create_bundle(
        assets / MOVENET, folder, task="pose", decoder="movenet", name="movenet_topdown", color="rgb",
        resize="stretch", thresholds=Thresholds(0.2, 0.45), needs={"detector": detector, "classes": ["person"]},
        overwrite=True))


def demo_bundles(assets: Path, out: Path) -> list[Bundle]:
    """Detection, segmentation and top-down pose, in the order they are reported."""
    return [yolox_bundle(assets, out), espnet_bundle(assets, out), movenet_bundle(assets, out)]


def run_demo(out: str | Path = "out/demo", assets: str | None = None) -> int:
    folder = find_assets(assets)
    out = Path(out)
    bundles = demo_bundles(folder, out / "bundles")
    video = folder / DEMO_VIDEO
    every = ", ".join(f"{name} on every {n}th frame" for name, n in INTERVAL.items())
    print(f"edge demo: {', '.join(b.name for b in bundles)} ({every}) on {video.name} "
          f"(footage: Intel IoT DevKit sample-videos, CC-BY-4.0)")
    summary = replay(str(video), RunConfig(bundles=[str(b.root) for b in bundles], out=str(out), interval=INTERVAL),
                     overwrite=True)
    print(f"  {summary['frames']} frames ({summary['decoded_frames']} decoded) in {summary['wall_s']:.1f} s: "
          f"{summary['fps']:.1f} fps ({summary['backend']}, {summary['precision']})")
    print("  per bundle, alone: " + ", ".join(f"{name} {stats['fps']:.1f} fps"
                                              for name, stats in summary["per_bundle"].items()))
    found = ", ".join(f"{label} {count}" for label, count in summary["labels"].items()) or "nothing"
    print(f"  detections: {found}")
    print("  latency p50/p99 ms: " + ", ".join(
        f"{stage} {v['p50']:.1f}/{v['p99']:.1f}" for stage, v in summary["latency_ms"].items()))
    print(f"  output: {out}/events.jsonl, {out}/annotated.mp4, {out}/summary.json")
    return 0

"""Benchmark (not a test, too heavy for CI): the large torchvision models pruned, exported and run as bundles.

SSD300 (VGG-16), FCN and DeepLabV3 (ResNet-50) with random weights (no hub here): each is pruned by the ratio
given, exported to ONNX and run by the runtime on a real frame; prints parameters, MACs and CPU latency before
and after, the layers whose width pruning kept, and the pruned model's output shapes — what shows the family
prunes consistently. Random weights say nothing of accuracy.

    python -m benchmarks.prune_distill_torchvision [--prune 0.5] [--models ssd300_vgg16 fcn_resnet50 ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2

from benchmarks._setup import ASSETS
from compile.compress import compress
from compile.families import segmentation_network, ssd_network
from compile.prune import PruneConfig
from edge.backends.onnxruntime import open_session
from edge.runner import Runner

BUILDERS = {
    "ssd300_vgg16": lambda: ssd_network("ssd300_vgg16"),
    "fcn_resnet50": lambda: segmentation_network("fcn_resnet50"),
    "deeplabv3_resnet50": lambda: segmentation_network("deeplabv3_resnet50"),
}


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", type=float, default=0.5)
    parser.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    args = parser.parse_args()
    frame = cv2.imread(str(ASSETS / "images/fastestdet_people_indoor.jpg"))
    for name in args.models:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="edge-prune-") as folder:
            result = compress(BUILDERS[name], Path(folder) / name, name=name, prune_config=PruneConfig(args.prune))
            original, pruned = result.rows
            shapes = [o.shape for o in open_session(result.onnx).get_outputs()]
            model = Runner(result.bundle, "onnxruntime")
            try:
                found = model(frame)
            finally:
                model.close()
        kept = result.compile_block["pruning"]["kept_layers"]
        print(f"{name}: params {original.params:,} -> {pruned.params:,} ({pruned.params / original.params:.2f}x), "
              f"MACs {pruned.macs / original.macs:.2f}x, CPU latency {original.latency_ms:.0f} -> "
              f"{pruned.latency_ms:.0f} ms; outputs {shapes}; ran on a frame ({type(found).__name__}); "
              f"kept {len(kept)} layers ({', '.join(kept[:4])}{', ...' if len(kept) > 4 else ''}); "
              f"{time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run())

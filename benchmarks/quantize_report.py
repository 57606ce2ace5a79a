"""Benchmark (not a test): INT8 quantization of YOLOX-nano (highway video) and ESPNetv2 (one-by-one person video)
with every calibration method; prints the gate metric per method, the chosen method, the layers kept in float and
fp32 vs int8 (s8s8, u8s8) CPU latency, with the command that reproduces it.

    python -m benchmarks.quantize_report [--calib-frames 64] [--holdout-frames 32] [--max-drop 0.01]

Each model runs ``edge quantize --method auto`` (all methods tried, the best kept); a model that cannot pass the
gate prints the gate's one-line explanation instead. Numbers depend on the machine; quote one run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from edge.cli import main
from edge.demo import espnet_bundle, find_assets, yolox_bundle

CASES = (("YOLOX-nano", yolox_bundle, "videos/bgslibrary_highway_traffic_320x240.avi"),
         ("ESPNetv2", espnet_bundle, "videos/one-by-one-person-detection.mp4"))


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib-frames", type=int, default=64)
    parser.add_argument("--holdout-frames", type=int, default=32)
    parser.add_argument("--max-drop", type=float, default=0.01)
    args = parser.parse_args()
    assets = find_assets()
    print(f"$ python -m benchmarks.quantize_report {shlex.join(sys.argv[1:])}")
    with tempfile.TemporaryDirectory(prefix="edge-quantize-bench-") as folder:
        for title, make, video in CASES:
            bundle = make(assets, Path(folder) / "fp32")
            out = Path(folder) / f"{bundle.name}.int8"
            print(f"\n## {title} calibrated on {video}", flush=True)
            frames = ["--calib-frames", str(args.calib_frames), "--holdout-frames", str(args.holdout_frames)]
            code = main(["quantize", str(bundle.root), "--calib", str(assets / video), "--out", str(out),
                         "--method", "auto", "--max-drop", str(args.max_drop), *frames])
            if code == 4:
                print("(exit 4: the gate's explanation is the error line on stderr; for the latencies, the same "
                      "with --method minmax --max-drop 1, the gate off:)", flush=True)
                main(["quantize", str(bundle.root), "--calib", str(assets / video), "--out", str(out) + ".ungated",
                      "--method", "minmax", "--max-drop", "1", *frames])
    return 0


if __name__ == "__main__":
    sys.exit(run())

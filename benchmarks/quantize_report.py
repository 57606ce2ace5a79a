"""Benchmark (not a test): INT8 of YOLOX-nano (highway video) and ESPNetv2 (one-by-one person video) through the gate
with a noise floor. Per model it prints fp32's floor, the post-training score of every calibration method with and
without equalization, the quantization-aware distillation score, the layers kept in float, the wall time, fp32 vs
int8 CPU latency, and the command that reproduces the bundle.

    python -m benchmarks.quantize_report [--calib-frames 128] [--holdout-frames 128] [--max-drop 0.01] [--qat 400]

Each model runs ``edge quantize --method auto`` (every method, with and without equalization, the best kept, then
the keep-in-float search and, where that falls short, ``--qat``); the QAT score is then measured on its own too
(same frames, same gate) so the table has it even where post-training quantization passed. Numbers depend on the
machine and its load; quote one run and say what else was running.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from calibration.dataset import calibration_set
from calibration.equalize import equalize
from calibration.gate import Gate
from calibration.ptq import convert_opset
from calibration.qat import quantization_aware_distillation
from edge.bundle import load_bundle
from edge.cli import main
from edge.demo import espnet_bundle, find_assets, yolox_bundle

CASES = (("YOLOX-nano", yolox_bundle, "videos/bgslibrary_highway_traffic_320x240.avi"),
         ("ESPNetv2", espnet_bundle, "videos/one-by-one-person-detection.mp4"))


def _row(name: str, score: float, interval, kept: int) -> str:
    return f"| {name:<24} | {score:.4f} | [{interval[0]:.4f}, {interval[1]:.4f}] | {kept} |"


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib-frames", type=int, default=128)
    parser.add_argument("--holdout-frames", type=int, default=128)
    parser.add_argument("--max-drop", type=float, default=0.01)
    parser.add_argument("--qat", type=int, default=400, help="QAT steps (0: skip the QAT measurement)")
    parser.add_argument("--search-budget", type=float, default=300.0)
    parser.add_argument("--only", choices=[c[0] for c in CASES], help="one model only")
    args = parser.parse_args()
    assets = find_assets()
    print(f"$ python -m benchmarks.quantize_report {shlex.join(sys.argv[1:])}")
    with tempfile.TemporaryDirectory(prefix="edge-quantize-bench-") as folder:
        scratch = Path(folder)
        for title, make, video in CASES:
            if args.only and args.only != title:
                continue
            bundle = make(assets, scratch / "fp32")
            out = scratch / f"{bundle.name}.int8"
            command = ["quantize", str(bundle.root), "--calib", str(assets / video), "--out", str(out),
                       "--method", "auto", "--max-drop", str(args.max_drop), "--calib-frames", str(args.calib_frames),
                       "--holdout-frames", str(args.holdout_frames), "--search-budget", str(args.search_budget),
                       "--qat", str(args.qat)]
            print(f"\n## {title} on {video}\n\n$ edge {shlex.join(command)}", flush=True)
            started = time.monotonic()
            code = main(command)
            wall = time.monotonic() - started
            if code != 0:
                print(f"(exit {code}: the gate's explanation is the error line on stderr; {wall:.0f} s)")
                continue
            report = load_bundle(out).extra["quantization"]
            gate = report["gate"]
            floor = gate["floor"]
            print(f"\nfloor ({gate['metric']}, fp32 vs perturbed fp32, {gate['frames']} frames): {floor[0]:.4f} "
                  f"[{floor[1]:.4f}, {floor[2]:.4f}]; required >= {report['required']:.4f}")
            print("\n| candidate | score | 95 % interval | layers in float |\n|---|---|---|---|")
            for trial in report["ptq"]:
                print(_row(trial["name"], trial["score"], trial["interval"], 0))
            if report["qat"]:
                print(_row(report["qat"]["name"], report["qat"]["score"], report["qat"]["interval"], 0))
            chosen = report["chosen"]
            print(_row(f"chosen: {chosen['name']}", chosen["score"], chosen["interval"], len(chosen["kept_in_float"])))
            print(f"\nlayers in float: {len(report['kept_in_float'])} of {report['weighted_layers']} "
                  f"({', '.join(report['kept_in_float']) or 'none'}); wall {wall:.0f} s")
            latency = {k: round(v, 2) for k, v in report["latency_ms"].items()}
            print(f"CPU latency ms (ORT, median): {json.dumps(latency)}; CPU runs {report['cpu_runs']}")
            if args.qat and not report["qat"]:
                _qat_alone(bundle, assets / video, args, scratch)
    return 0


def _qat_alone(bundle, video: Path, args, scratch: Path) -> None:
    """The QAT score where ``edge quantize`` did not need QAT: the same calibration set (cached) and gate."""
    started = time.monotonic()
    found = calibration_set(bundle.input, [str(video)], args.calib_frames, args.holdout_frames)
    gate = Gate(bundle, found.holdout, args.max_drop)
    batches = list(found.batches())
    converted = convert_opset(bundle.file("model"), scratch / f"{bundle.name}.qat.source.onnx")
    source, _ = equalize(converted, scratch / f"{bundle.name}.qat.equalized.onnx", batches, bundle.input.name)
    result = quantization_aware_distillation(source, bundle, found.tensors, args.qat, scratch)
    score = gate.score(result.quantized)
    print(_row(f"qat+equalized ({result.steps} steps)", score.score, (score.low, score.high), 0)
          + f" (measured on its own, {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    sys.exit(run())

"""``edge build-engine``: its options, then its handler."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.cli.values import index, positive


def add_engine_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from edge.backends.trt_api import PRECISIONS
    from edge.engines import DEFAULT_WORKSPACE_MIB

    engine = commands.add_parser("build-engine", parents=[common],
                                 help="build the bundle's TensorRT engine for this machine (run it on the device)")
    engine.add_argument("bundle", help="bundle folder; the engine is written to its engines/ folder")
    engine.add_argument("--precision", choices=PRECISIONS,
                        help="default: int8 for a quantized (Q/DQ) bundle, else fp16")
    engine.add_argument("--workspace", type=positive, default=DEFAULT_WORKSPACE_MIB, metavar="MIB",
                        help=f"TensorRT workspace limit in MiB (default: {DEFAULT_WORKSPACE_MIB}, for small devices)")
    engine.add_argument("--dla-core", type=index, metavar="N",
                        help="run on DLA core N, with GPU fallback (Xavier, Orin)")
    engine.add_argument("--timing-cache", type=Path, metavar="FILE",
                        help="timing cache to reuse and update (default: one per TensorRT version and GPU, "
                             "in ~/.cache/edge/tensorrt)")
    engine.add_argument("--calib", action="append", default=[], metavar="SOURCE",
                        help="calibration frames for int8 without Q/DQ (TensorRT < 11); repeatable")
    engine.add_argument("--calib-frames", type=positive, default=256, metavar="N",
                        help="calibrate on at most N frames (default: 256)")
    engine.set_defaults(func=cmd_build_engine)


def cmd_build_engine(args: argparse.Namespace) -> int:
    from edge.backends.builder import build_engine
    from edge.bundle import load_bundle
    from edge.engines import EngineOptions, default_precision

    bundle = load_bundle(args.bundle)
    options = EngineOptions(args.precision or default_precision(bundle), args.workspace, args.dla_core)
    reader = None
    if args.calib:  # the footage → preprocessed batches; the builder's calibrator reads them on the device
        from calibration.tensorrt_feed import calibration_feed

        reader = calibration_feed(bundle, args.calib, args.calib_frames)
    path = build_engine(bundle, options, timing_cache=args.timing_cache, calibration=reader)
    print(f"engine {path.name} ({options.precision}) written to {path.parent}")
    return 0

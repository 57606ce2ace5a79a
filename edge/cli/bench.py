"""``edge bench``: its options, then its handler."""

from __future__ import annotations

import argparse
from typing import Any

from edge.backends import BACKEND_NAMES
from edge.cli.values import positive


def positives(text: str) -> list[int]:
    """``1,2,4`` → [1, 2, 4]: the values a sweep takes."""
    return [positive(part) for part in text.split(",")]


def add_bench_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    bench = commands.add_parser("bench", parents=[common], help="throughput and per-stage latency against a naive "
                                "loop, per backend, with a sweep of workers × threads")
    bench.add_argument("--bundle", action="append", required=True, metavar="DIR_OR_SAMPLE",
                       help="bundle folder, or a sample (yolox_nano, espnetv2_voc, movenet_topdown); repeatable")
    bench.add_argument("--source", required=True, help="video file, image folder, glob or camera (a sample video "
                                                       "name, e.g. one-by-one-person-detection.mp4, is taken from "
                                                       "the assets)")
    bench.add_argument("--frames", type=positive, default=200, help="frames measured per run (default: 200)")
    bench.add_argument("--warmup", type=positive, default=10, help="frames run first and not measured (default: 10)")
    bench.add_argument("--repeat", type=positive, default=2,
                       help="rounds of naive loop then pipeline; the ratio is their median (default: 2)")
    bench.add_argument("--backend", choices=BACKEND_NAMES, default="auto",
                       help="auto: every backend and precision present (default); or only one backend")
    bench.add_argument("--workers", type=positives, metavar="N[,N…]",
                       help="sweep: inference workers (default: 1,2,4,8 up to the CPUs)")
    bench.add_argument("--threads", type=positives, metavar="N[,N…]",
                       help="sweep: threads per worker (default: 1,2,4,8 up to the CPUs)")
    bench.add_argument("--no-video", dest="video", action="store_false",
                       help="runs write the events only, not the annotated video")
    bench.add_argument("--no-tracking", dest="tracking", action="store_false", help="runs without tracking")
    bench.add_argument("--json", action="store_true", help="print the results as one JSON document")
    bench.add_argument("--out", metavar="DIR", help="report folder: bench.json, report.md and PNG charts")
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import json
    import sys

    from edge.bench.report import CHARTS_NEED, summary, write_report
    from edge.bench.run import BenchConfig, bench

    config = BenchConfig(bundles=args.bundle, source=args.source, frames=args.frames, warmup=args.warmup,
                         repeat=args.repeat, backend=args.backend, workers=args.workers, threads=args.threads,
                         video=args.video, tracking=args.tracking)
    doc, charted = bench(config)
    if args.out:
        charts, note = write_report(doc, charted, args.out)
        where = f"report: {args.out}/report.md, bench.json, {len(charts)} chart(s)" + (f" ({note})" if note else "")
    else:
        import importlib.util

        where = None if importlib.util.find_spec("matplotlib") else f"(--out DIR writes a report; {CHARTS_NEED})"
    print(json.dumps(doc, indent=2) if args.json else summary(doc))
    if where:
        print(where, file=sys.stderr if args.json else sys.stdout)
    return 0

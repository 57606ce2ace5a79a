"""``edge demo`` and ``edge doctor``: their options, then their handlers."""

from __future__ import annotations

import argparse
from typing import Any


def add_demo_doctor_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    demo = commands.add_parser("demo", parents=[common], help="replay the sample footage through sample models")
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument("--assets", help="assets folder (default: $EDGE_ASSETS or ../shared/assets)")
    demo.set_defaults(func=cmd_demo)

    doctor = commands.add_parser("doctor", parents=[common], help="what this machine can run")
    doctor.set_defaults(func=cmd_doctor)


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    return run_demo(args.out, args.assets)


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge.doctor import report

    print(report())
    return 0

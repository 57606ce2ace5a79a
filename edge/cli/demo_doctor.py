"""``edge demo``, ``edge doctor`` and ``edge service install``: their options, then their handlers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_demo_doctor_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    demo = commands.add_parser("demo", parents=[common], help="replay the sample footage through sample models")
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument("--assets", help="assets folder (default: $EDGE_ASSETS or ../shared/assets)")
    demo.set_defaults(func=cmd_demo)

    doctor = commands.add_parser("doctor", parents=[common], help="what this machine can run")
    doctor.add_argument("--json", action="store_true", help="print the findings as one JSON document")
    doctor.set_defaults(func=cmd_doctor)

    service = commands.add_parser("service", parents=[common], help="run the daemon under systemd")
    service_install = service.add_subparsers(dest="service_command", required=True, metavar="ACTION").add_parser(
        "install", parents=[common], help="write the systemd unit (and its user) for a config file")
    service_install.add_argument("--config", required=True, help="the YAML config the daemon runs (edge run --config)")
    service_install.add_argument("--dry-run", action="store_true", help="print the unit; write nothing")
    service_install.add_argument("--name", default="edge", help="unit and state folder name (default: edge)")
    service_install.add_argument("--user", default="edge", help="system user the daemon runs as (default: edge)")
    service_install.add_argument("--root", default="/", help="install into another root file system (an image "
                                 "being built): nothing is reloaded")
    service_install.set_defaults(func=cmd_service_install)


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    return run_demo(args.out, args.assets)


def cmd_doctor(args: argparse.Namespace) -> int:
    import json

    from edge.doctor import facts, report

    found = facts()
    print(json.dumps(found, indent=2) if args.json else report(found))
    return 0


def cmd_service_install(args: argparse.Namespace) -> int:
    from edge.service import install, render

    service = render(args.config, name=args.name, user=args.user)
    for warning in service.warnings:
        print(f"edge: warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print(service.unit, end="")
        return 0
    written = install(service, Path(args.root))
    start = f"systemctl --root {args.root} enable" if args.root != "/" else "sudo systemctl enable --now"
    print(f"wrote {', '.join(map(str, written))}; start it with: {start} {service.name}")
    return 0

"""``edge export``: its options, then its handler."""

from __future__ import annotations

import argparse
from typing import Any


def add_export_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser("export", parents=[common], help="events.jsonl into COCO results, MOT rows or CSV")
    export.add_argument("events", help="an events.jsonl written by edge replay or edge run")
    export.add_argument("--format", required=True, choices=("coco", "mot", "csv"),
                        help="coco: COCO results JSON (91-category ids for COCO-80 models, image_id = frame); "
                             "mot: MOT Challenge rows (1-based frames, track ids); csv: one row per detection")
    export.add_argument("--out", help="file to write (default: beside EVENTS, e.g. events.coco.json)")
    export.add_argument("--bundle", help="whose detections (default: the only detection bundle in EVENTS)")
    export.add_argument("--stream", help="which stream (coco and mot take one; default: the only one)")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from edge.export import export

    path, what = export(args.events, args.format, args.out, bundle=args.bundle, stream=args.stream)
    print(f"{what} → {path}")
    return 0

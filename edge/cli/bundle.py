"""``edge bundle create|info|validate``: their options, then their handlers."""

from __future__ import annotations

import argparse
from typing import Any

from edge.backends import BACKEND_NAMES
from edge.bundle import RESIZES, TASKS, Thresholds
from edge.cli.values import floats, json_value, key_value, size


def add_bundle_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from edge.decoders import DECODERS

    bundle = commands.add_parser("bundle", parents=[common], help="bundle tools")
    bundle_commands = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    create = bundle_commands.add_parser("create", parents=[common], help="wrap an ONNX model into a bundle")
    create.add_argument("--onnx", required=True, help="the ONNX model")
    create.add_argument("--task", required=True, choices=TASKS)
    create.add_argument("--decoder", required=True, choices=sorted(DECODERS))
    create.add_argument("--out", required=True, help="bundle folder to write")
    create.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")
    create.add_argument("--name", help="bundle name (default: the ONNX file's stem)")
    create.add_argument("--labels", help="text file, one label per line, in class-index order")
    add_input_options(create, defaults=True)
    create.add_argument("--score", type=float, default=Thresholds.score, help="score threshold")
    create.add_argument("--iou", type=float, default=Thresholds.iou, help="NMS IoU threshold")
    create.add_argument("--decoder-arg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="decoder setting (VALUE is JSON or a string); repeatable")
    create.add_argument("--file", type=key_value, action="append", default=[], metavar="ROLE=PATH",
                        help="extra file the decoder needs, e.g. anchors=anchors.npy; repeatable")
    create.add_argument("--needs", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="another bundle of the run this one works on: detector=NAME (top-down pose, "
                             "per-box classification; with classes='[\"person\"]', min_score, expand, "
                             "max_crops) or instances=NAME (panoptic); repeatable")
    create.set_defaults(func=cmd_bundle_create)

    info = bundle_commands.add_parser("info", parents=[common], help="show a bundle: task, decoder, input, labels, "
                                      "files, engines, compile and quantization reports")
    info.add_argument("folder", metavar="DIR", help="bundle folder")
    info.add_argument("--json", action="store_true", help="print bundle.json with file sizes and engines")
    info.set_defaults(func=cmd_bundle_info)
    validate = bundle_commands.add_parser("validate", parents=[common], help="check a bundle as a run would, and run "
                                          "one frame through it (exit 0 valid, 3 not)")
    validate.add_argument("folder", metavar="DIR", help="bundle folder")
    validate.add_argument("--backend", choices=BACKEND_NAMES, default="auto",
                          help="backend to open the model with (default: auto; no engine is built)")
    validate.set_defaults(func=cmd_bundle_validate)


def add_input_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """How an ONNX model is fed (``bundle create``, and ``compile`` of an ONNX file): the same flags for both.
    ``compile`` takes no defaults, so its torchvision models keep their own."""
    def default(value):
        return value if defaults else None

    parser.add_argument("--input-size", type=size, help="WIDTHxHEIGHT (default: the model's)")
    parser.add_argument("--layout", choices=("nchw", "nhwc"), help="default: from the model's input shape")
    parser.add_argument("--color", choices=("rgb", "bgr"), default=default("rgb"))
    parser.add_argument("--resize", choices=RESIZES, default=default("letterbox"))
    parser.add_argument("--pad-value", type=float, default=default(114.0))
    parser.add_argument("--mean", type=floats, default=default((0.0,)), help="per channel, 0..255 units, model order")
    parser.add_argument("--std", type=floats, default=default((1.0,)), help="per channel, 0..255 units, model order")
    parser.add_argument("--dtype", choices=("float32", "uint8"), help="default: the model's input type")


def cmd_bundle_create(args: argparse.Namespace) -> int:
    from edge.bundle.create import create_bundle

    bundle = create_bundle(
        args.onnx, args.out, task=args.task, decoder=args.decoder, name=args.name, labels=args.labels,
        thresholds=Thresholds(score=args.score, iou=args.iou),
        decoder_args={k: json_value(v) for k, v in args.decoder_arg},
        files=dict(args.file), needs={k: json_value(v) for k, v in args.needs}, input_size=args.input_size,
        layout=args.layout, color=args.color,
        resize=args.resize, pad_value=args.pad_value, mean=args.mean, std=args.std, dtype=args.dtype,
        overwrite=args.overwrite,
    )
    print(f"bundle '{bundle.name}' ({bundle.task}, decoder {bundle.decoder}) written to {bundle.root}")
    return 0


def cmd_bundle_info(args: argparse.Namespace) -> int:
    import json

    from edge.bundle_info import info, render

    doc = info(args.folder)
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    return 0


def cmd_bundle_validate(args: argparse.Namespace) -> int:
    from edge.bundle_info import validate

    print(validate(args.folder, args.backend))
    return 0

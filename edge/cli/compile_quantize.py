"""``edge compile`` and ``edge quantize``: their options, then their handlers. The handlers import
``compile/`` and ``calibration/`` inside their functions only, so the runtime never loads them (and the
device may not have torch)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.bundle import TASKS
from edge.cli.bundle import add_input_options
from edge.cli.values import key_value, positive
from edge.errors import UsageError

PROJECT_PACKAGES = ("edge", "streams", "compile", "calibration")


@contextmanager
def _needs_compile_extra(command: str) -> Iterator[None]:
    """A package of the compile extra missing (a runtime-only install, as on a Jetson) → one line naming the
    extra to install (exit 2), not a traceback."""
    try:
        yield
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in PROJECT_PACKAGES:
            raise
        raise UsageError(f"{command} needs the compile extra: pip install 'edge[compile]' ({e})") from None


def add_compile_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    compile_ = commands.add_parser("compile", parents=[common], help="PyTorch model → bundle")
    compile_.add_argument("--model", required=True, help="torchvision model name (e.g. ssdlite320_mobilenet_v3_large, "
                          "resnet18, lraspp_mobilenet_v3_large, maskrcnn_resnet50_fpn) or mtcnn; with "
                          "--prune/--distill also mtcnn_onet/mtcnn_rnet, a bundle folder or an ONNX file")
    compile_.add_argument("--checkpoint", action="append", default=[], metavar="[NETWORK=]FILE",
                          help="state_dict file (torch.load weights_only); default: random weights. For MTCNN "
                               "one per network: pnet=FILE rnet=FILE onet=FILE")
    compile_.add_argument("--task", required=True, choices=TASKS)
    compile_.add_argument("--out", required=True, help="bundle folder to write")
    compile_.add_argument("--labels", help="text file, one label per line (default: the model's own)")
    compile_.add_argument("--name", help="bundle name (default: the model name)")
    add_compress_options(compile_)
    compile_.add_argument("--int8", action="store_true", help="then quantize to int8 with the accuracy gate "
                          "(as edge quantize; the bundle in --out becomes the int8 one when the gate passes)")
    add_int8_options(compile_)
    add_input_options(compile_, defaults=False)
    compile_.set_defaults(func=cmd_compile)

    quantize = commands.add_parser("quantize", parents=[common],
                                   help="INT8 post-training quantization of a bundle, with the accuracy gate")
    quantize.add_argument("bundle", help="the fp32 bundle folder")
    quantize.add_argument("--out", required=True, help="folder for the int8 bundle (written only if the gate passes)")
    add_int8_options(quantize)
    quantize.set_defaults(func=cmd_quantize)


def add_int8_options(parser: argparse.ArgumentParser) -> None:
    """The calibration and accuracy-gate options of ``quantize`` and ``compile --int8``."""
    parser.add_argument("--calib", action="extend", default=[], metavar="SOURCE", nargs="+",
                        help="calibration footage (videos, image folders, globs)")
    parser.add_argument("--method", default="percentile", metavar="minmax|entropy|percentile|auto",
                        help="calibration method (default percentile); auto tries all and keeps the best")
    parser.add_argument("--max-drop", type=float, default=0.01, metavar="X",
                        help="allowed drop below fp32's noise floor (fp32 against itself on the held-out frames "
                             "with camera noise and a JPEG re-encode), or below fp32's score against --val labels "
                             "(default 0.01)")
    parser.add_argument("--calib-frames", type=positive, default=128, metavar="N",
                        help="frames to calibrate on (default 128)")
    parser.add_argument("--holdout-frames", type=positive, default=128, metavar="N",
                        help="other frames of the same footage the gate compares on (default 128)")
    parser.add_argument("--val", metavar="PATH", help="labels to gate on instead: a COCO detection JSON, or a folder "
                        "with images/ and masks/ (segmentation)")
    parser.add_argument("--qat", type=int, default=0, metavar="STEPS",
                        help="when post-training quantization falls short: quantization-aware distillation for "
                             "about STEPS batches (ModelOpt, on the calibration frames)")
    parser.add_argument("--max-float", type=float, default=0.05, metavar="SHARE",
                        help="largest share of weighted layers the search may keep in float (default 0.05)")
    parser.add_argument("--search-budget", type=float, default=300.0, metavar="SECONDS",
                        help="time for measuring layers one at a time in the keep-in-float search (default 300)")


def add_compress_options(parser: argparse.ArgumentParser) -> None:
    prune = parser.add_argument_group("pruning")
    prune.add_argument("--prune", type=float, metavar="RATIO", help="remove this fraction of channels, e.g. 0.5")
    prune.add_argument("--prune-importance", choices=("magnitude", "taylor", "contribution"), default="magnitude",
                       help="channel ranking: weight magnitude, Taylor (gradients on --distill frames), or "
                            "contribution (what each channel feeds the next layers on --distill frames; for "
                            "exports with BatchNorm folded, such as YOLOX)")
    prune.add_argument("--prune-global", action="store_true", help="rank channels across layers, not per layer")
    prune.add_argument("--prune-macs", type=float, metavar="SHARE",
                       help="at most this share of the original MACs, e.g. 0.6: the channel groups whose pruning "
                            "costs most per MAC saved (measured on --distill frames) are left whole while it allows")
    prune.add_argument("--prune-round-to", type=int, metavar="N",
                       help="keep every pruned layer's channel count a multiple of N, e.g. 8: TensorRT's FP16 and "
                            "INT8 kernels pad channels to multiples of 8 or more, so an odd count costs what the "
                            "rounded-up one does")
    distill = parser.add_argument_group("distillation (teacher: the original model; no labels needed)")
    distill.add_argument("--distill", nargs="+", metavar="SOURCE", help="footage to distil on (videos, folders)")
    distill.add_argument("--frames", type=int, default=200, help="frames sampled from the footage (default 200)")
    distill.add_argument("--epochs", type=int, default=10)
    distill.add_argument("--batch", type=int, default=8)
    distill.add_argument("--lr", type=float, default=1e-3,
                         help="learning rate (relative to each weight tensor's scale where the model has no "
                              "normalisation layers, e.g. BatchNorm folded)")
    distill.add_argument("--lr-schedule", choices=("constant", "cosine", "wsd"), default="constant",
                         help="cosine: down to 0 by the last epoch or the end of --distill-minutes; wsd: constant, "
                              "then linearly down to 0 over the last fifth of them")
    distill.add_argument("--lr-warmup", type=int, default=0, metavar="STEPS",
                         help="raise the rate linearly to --lr over the first STEPS optimizer steps (default 0)")
    distill.add_argument("--temperature", type=float, default=2.0, help="KL temperature for class scores")
    distill.add_argument("--seed", type=int, default=0)
    distill.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint in --out")
    distill.add_argument("--freeze-backbone-epochs", type=int, default=0, help="train the heads only at first")
    distill.add_argument("--features", action="store_true", help="also distil the backbone's feature maps")
    distill.add_argument("--mixup", action=argparse.BooleanOptionalAction,
                         help="mix frames pairwise (default: on for classification and segmentation)")
    distill.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    distill.add_argument("--distill-minutes", type=float, metavar="M", help="training time budget in minutes")
    distill.add_argument("--holdout-split", choices=("spread", "end"), default="spread",
                         help="frames the report scores on: every 5th sampled frame (spread), or the last fifth "
                              "of each source (end: footage recorded after all training frames)")
    distill.add_argument("--threads", type=int, help="CPU threads (default: the cores other processes leave free)")
    distill.add_argument("--rect", action="store_true",
                         help="distil on canvases cut to the letterboxed footage's aspect, not the model's full "
                              "input: the same scale without the grey bands (Ultralytics' rect training)")
    distill.add_argument("--views", type=int, default=4, help="fixed augmented views per frame whose teacher "
                         "outputs are cached (default 4; 0: a fresh augmentation every step)")
    distill.add_argument("--reconstruct", action=argparse.BooleanOptionalAction, default=True,
                         help="re-solve the pruned layers by least squares before distilling (default: on)")
    distill.add_argument("--curve", type=float, metavar="M", help="score the student every M minutes of training")
    parser.add_argument("--decoder", help="an ONNX --model: the decoder of its outputs, e.g. yolox")


def cmd_compile(args: argparse.Namespace) -> int:
    with _needs_compile_extra("edge compile"):
        from compile.build import compile_model
    config = _quantize_config(args) if args.int8 else None  # bad --calib/--method/--max-drop fail before compiling
    if not args.int8 and args.calib:
        raise UsageError("--calib: only with --int8")
    if args.prune is not None or args.distill:
        return _compile_compressed(args, config)  # with --int8: one chain, one report
    bundle = compile_model(args.model, args.out, task=args.task, checkpoint=_checkpoints(args.checkpoint),
                           labels=args.labels, name=args.name, input_size=args.input_size)
    print(f"bundle '{bundle.name}' ({bundle.task}, decoder {bundle.decoder}, weights "
          f"{bundle.provenance.get('weights')}) written to {bundle.root}")
    if config is None:
        return 0
    from edge.bundle import load_bundle

    return _quantize(load_bundle(args.out), args.out, config)


def _checkpoints(given: list[str]) -> str | dict[str, str] | None:
    """``--checkpoint FILE`` once, or ``--checkpoint ROLE=FILE`` per network of a multi-network model (MTCNN)."""
    if not given:
        return None
    if len(given) == 1 and ("=" not in given[0] or Path(given[0]).is_file()):
        return given[0]
    try:
        pairs = [key_value(item) for item in given]
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"--checkpoint: {e} (one FILE, or NETWORK=FILE for each network)") from None
    if len({role for role, _ in pairs}) != len(pairs):
        raise UsageError("--checkpoint: a network is given twice")
    return dict(pairs)


def _quantize_config(args: argparse.Namespace):
    from calibration.quantize_bundle import QuantizeConfig

    if not args.calib:
        raise UsageError("--calib: give calibration footage (a video, an image folder or a glob)")
    return QuantizeConfig(tuple(args.calib), args.method, args.max_drop, args.calib_frames, args.holdout_frames,
                          qat_steps=args.qat, val=args.val, search_budget_s=args.search_budget,
                          max_float=args.max_float)


def _quantize(bundle, out: str, config) -> int:
    from calibration.quantize_bundle import format_report, quantize_bundle

    result = quantize_bundle(bundle, Path(out), config)
    print(format_report(result.report))
    print(f"int8 bundle '{result.bundle.name}' written to {result.bundle.root}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    with _needs_compile_extra("edge quantize"):
        import calibration.quantize_bundle  # noqa: F401  (onnx, ORT's quantization tools: what the device may lack)
    from edge.bundle import load_bundle

    config = _quantize_config(args)
    return _quantize(load_bundle(args.bundle), args.out, config)


def _compile_compressed(args: argparse.Namespace, int8=None) -> int:
    """``--prune``/``--distill`` (then ``--int8``): see compile/compress.py."""
    import tempfile
    from pathlib import Path

    from compile.compress import compress
    from compile.distill import DistillConfig
    from compile.families import network_builder
    from compile.prune import PruneConfig
    from compile.report import format_table

    try:
        prune = None if args.prune is None else PruneConfig(
            ratio=args.prune, importance=args.prune_importance, global_pruning=args.prune_global,
            macs_budget=args.prune_macs, round_to=args.prune_round_to)
        distill = None if not args.distill else DistillConfig(
            sources=tuple(args.distill), frames=args.frames, epochs=args.epochs, batch=args.batch, lr=args.lr,
            schedule=args.lr_schedule, warmup_steps=args.lr_warmup,
            temperature=args.temperature, seed=args.seed, freeze_backbone_epochs=args.freeze_backbone_epochs,
            features=args.features, device=args.device, resume=args.resume,
            mixup=args.task in ("classification", "segmentation") if args.mixup is None else args.mixup,
            holdout_split=args.holdout_split, threads=args.threads, views=args.views, minutes=args.distill_minutes,
            reconstruct=args.reconstruct, curve_minutes=args.curve, rect=args.rect)
    except ValueError as e:
        raise UsageError(f"edge compile: {e}") from None
    if prune is not None and prune.importance in ("taylor", "contribution") and distill is None:
        raise UsageError(f"--prune-importance {prune.importance}: needs frames to measure on; give --distill SOURCE")
    if prune is not None and prune.macs_budget is not None and distill is None:
        raise UsageError("--prune-macs: needs frames to measure each group's cost on; give --distill SOURCE")
    checkpoint = _checkpoints(args.checkpoint)
    if args.model == "mtcnn":
        from compile.mtcnn_compress import compress_mtcnn

        result = compress_mtcnn(checkpoint, Path(args.out), name=args.name, prune_config=prune, distill_config=distill)
        print(format_table(result.compile_block["report"]))
        print(f"mtcnn bundle '{result.bundle.name}' with the compressed O-Net written to {args.out}")
        return 0
    if isinstance(checkpoint, dict):
        raise UsageError("--checkpoint: --prune/--distill take one checkpoint file, not one per network")
    with tempfile.TemporaryDirectory(prefix="edge-compile-") as scratch:
        build = network_builder(
            args.model, args.task, scratch=Path(scratch), checkpoint=checkpoint, input_size=args.input_size,
            decoder=args.decoder, labels=args.labels, layout=args.layout, color=args.color, resize=args.resize,
            pad_value=args.pad_value, mean=args.mean, std=args.std, dtype=args.dtype)
        result = compress(build, Path(args.out), name=args.name or Path(args.model).stem,
                          prune_config=prune, distill_config=distill, int8=int8)
    print(format_table(result.compile_block["report"]))
    where = f"bundle '{result.bundle.name}'" if result.bundle else f"{result.onnx} (no runtime decoder yet)"
    print(f"{where} written to {args.out}")
    return 0

"""The ``edge`` command: one console script, one subcommand per mode (see CONTRACT.md).

Handlers live next to what they drive; this module only parses arguments and maps failures to the
contract's exit codes with one line on stderr (the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from edge import __version__
from edge.bundle import RESIZES, TASKS, Thresholds
from edge.errors import EdgeError, UsageError

COMPILE_EXTRA = ("torch", "torchvision", "onnx")  # what `edge compile` imports that the device may lack


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 416x416, not '{text}'") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, not '{text}'")
    return width, height


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not '{text}'") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not '{text}'")
    return value


def _index(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0, 1, …, not '{text}'")
    return int(text)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not '{text}'")
    return key, value


def _json_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_bundle_create(args: argparse.Namespace) -> int:
    from edge.bundle_create import create_bundle

    bundle = create_bundle(
        args.onnx, args.out, task=args.task, decoder=args.decoder, name=args.name, labels=args.labels,
        thresholds=Thresholds(score=args.score, iou=args.iou),
        decoder_args={k: _json_value(v) for k, v in args.decoder_arg},
        files=dict(args.file), needs={k: _json_value(v) for k, v in args.needs}, input_size=args.input_size,
        layout=args.layout, color=args.color,
        resize=args.resize, pad_value=args.pad_value, mean=args.mean, std=args.std, dtype=args.dtype,
    )
    print(f"bundle '{bundle.name}' ({bundle.task}, decoder {bundle.decoder}) written to {bundle.root}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from edge.replay import replay
    from streams.feed import DecodeMode

    summary = replay(args.source, args.bundle, args.out, backend=args.backend, video=not args.no_video,
                     realtime=args.realtime, threads=args.threads, workers=args.workers,
                     decode=DecodeMode(args.decode) if args.decode else None, track=args.track,
                     allow_build=not args.no_engine_build, save_masks=args.save_masks)
    print(f"{summary['frames']} frames at {summary['fps']} fps → {args.out}")
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from compile.engine import build_engine, default_precision
    from edge.bundle import load_bundle
    from edge.engines import EngineOptions

    bundle = load_bundle(args.bundle)
    options = EngineOptions(args.precision or default_precision(bundle), args.workspace, args.dla_core)
    path = build_engine(bundle, options, timing_cache=args.timing_cache, calibration=args.calib,
                        calibration_frames=args.calib_frames)
    print(f"engine {path.name} ({options.precision}) written to {path.parent}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge.config import Config, HttpConfig, SourceConfig, load_config
    from edge.daemon import Daemon
    from edge.logs import configure

    configure(args.debug)
    if args.config:
        if args.source or args.bundle:
            raise UsageError("--config: give either a config file or --source/--bundle, not both")
        config = load_config(args.config)
    elif args.source and args.bundle:
        config = Config(sources=[SourceConfig(url=s) for s in args.source], bundles=args.bundle,
                        out=args.out or "out/run", backend=args.backend, workers=args.workers,
                        threads=args.threads, batch=args.batch, decode=args.decode or "thread", video=not args.no_video,
                        http=HttpConfig(port=args.http_port))
    else:
        raise UsageError("edge run: needs --config FILE, or --source and --bundle")
    return Daemon(config).run()


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    return run_demo(args.out, args.assets)


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge.doctor import report

    print(report())
    return 0


def _checkpoints(given: list[str]) -> str | dict[str, str] | None:
    """``--checkpoint FILE`` once, or ``--checkpoint ROLE=FILE`` per network of a multi-network model (MTCNN)."""
    if not given:
        return None
    if len(given) == 1 and ("=" not in given[0] or Path(given[0]).is_file()):
        return given[0]
    try:
        pairs = [_key_value(item) for item in given]
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"--checkpoint: {e} (one FILE, or NETWORK=FILE for each network)") from None
    if len({role for role, _ in pairs}) != len(pairs):
        raise UsageError("--checkpoint: a network is given twice")
    return dict(pairs)


def cmd_compile(args: argparse.Namespace) -> int:
    try:
        from compile.build import compile_model
    except ModuleNotFoundError as e:
        if e.name not in COMPILE_EXTRA:
            raise
        raise UsageError(f"edge compile needs the compile extra (pip install 'edge[compile]'): {e}") from None
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


def _quantize_config(args: argparse.Namespace):
    from calibration.int8 import QuantizeConfig

    if not args.calib:
        raise UsageError("--calib: give calibration footage (a video, an image folder or a glob)")
    return QuantizeConfig(tuple(args.calib), args.method, args.max_drop, args.calib_frames, args.holdout_frames)


def _quantize(bundle, out: str, config) -> int:
    from calibration.int8 import format_report, quantize_bundle

    result = quantize_bundle(bundle, Path(out), config)
    print(format_report(result.report))
    print(f"int8 bundle '{result.bundle.name}' written to {result.bundle.root}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    try:
        import onnxruntime.quantization  # noqa: F401  (what the device may lack)
    except ModuleNotFoundError as e:
        raise UsageError(f"edge quantize needs ONNX Runtime's quantization tools and onnx: {e}") from None
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
            ratio=args.prune, importance=args.prune_importance, global_pruning=args.prune_global)
        distill = None if not args.distill else DistillConfig(
            sources=tuple(args.distill), frames=args.frames, epochs=args.epochs, batch=args.batch, lr=args.lr,
            temperature=args.temperature, seed=args.seed, freeze_backbone_epochs=args.freeze_backbone_epochs,
            features=args.features, device=args.device, resume=args.resume,
            mixup=args.task in ("classification", "segmentation") if args.mixup is None else args.mixup,
            holdout_split=args.holdout_split, threads=args.threads, views=args.views, minutes=args.distill_minutes,
            reconstruct=args.reconstruct, curve_minutes=args.curve)
    except ValueError as e:
        raise UsageError(f"edge compile: {e}") from None
    if prune is not None and prune.importance == "taylor" and distill is None:
        raise UsageError("--prune-importance taylor: needs frames for its gradients; give --distill SOURCE")
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


def _add_input_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """How an ONNX model is fed (``bundle create``, and ``compile`` of an ONNX file): the same flags for both.
    ``compile`` takes no defaults, so its torchvision models keep their own."""
    def default(value):
        return value if defaults else None

    parser.add_argument("--input-size", type=_size, help="WIDTHxHEIGHT (default: the model's)")
    parser.add_argument("--layout", choices=("nchw", "nhwc"), help="default: from the model's input shape")
    parser.add_argument("--color", choices=("rgb", "bgr"), default=default("rgb"))
    parser.add_argument("--resize", choices=RESIZES, default=default("letterbox"))
    parser.add_argument("--pad-value", type=float, default=default(114.0))
    parser.add_argument("--mean", type=_floats, default=default((0.0,)), help="per channel, 0..255 units, model order")
    parser.add_argument("--std", type=_floats, default=default((1.0,)), help="per channel, 0..255 units, model order")
    parser.add_argument("--dtype", choices=("float32", "uint8"), help="default: the model's input type")


def _add_int8_options(parser: argparse.ArgumentParser) -> None:
    """The calibration and accuracy-gate options of ``quantize`` and ``compile --int8``."""
    parser.add_argument("--calib", action="extend", default=[], metavar="SOURCE", nargs="+",
                        help="calibration footage (videos, image folders, globs)")
    parser.add_argument("--method", default="auto", metavar="minmax|entropy|percentile|auto",
                        help="calibration method; auto tries all and keeps the best on held-out frames (default)")
    parser.add_argument("--max-drop", type=float, default=0.01, metavar="X",
                        help="allowed relative drop of the int8 model's agreement with fp32 on held-out frames "
                             "(default 0.01: at least 0.99 of fp32's score against itself, which is 1)")
    parser.add_argument("--calib-frames", type=_positive, default=128, metavar="N",
                        help="frames to calibrate on (default 128)")
    parser.add_argument("--holdout-frames", type=_positive, default=32, metavar="N",
                        help="other frames of the same footage the gate compares on (default 32)")


def _add_compress_options(parser: argparse.ArgumentParser) -> None:
    prune = parser.add_argument_group("pruning")
    prune.add_argument("--prune", type=float, metavar="RATIO", help="remove this fraction of channels, e.g. 0.5")
    prune.add_argument("--prune-importance", choices=("magnitude", "taylor"), default="magnitude",
                       help="channel ranking: weight magnitude, or Taylor (gradients on --distill frames)")
    prune.add_argument("--prune-global", action="store_true", help="rank channels across layers, not per layer")
    distill = parser.add_argument_group("distillation (teacher: the original model; no labels needed)")
    distill.add_argument("--distill", nargs="+", metavar="SOURCE", help="footage to distil on (videos, folders)")
    distill.add_argument("--frames", type=int, default=200, help="frames sampled from the footage (default 200)")
    distill.add_argument("--epochs", type=int, default=10)
    distill.add_argument("--batch", type=int, default=8)
    distill.add_argument("--lr", type=float, default=1e-3)
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
    distill.add_argument("--views", type=int, default=4, help="fixed augmented views per frame whose teacher "
                         "outputs are cached (default 4; 0: a fresh augmentation every step)")
    distill.add_argument("--reconstruct", action=argparse.BooleanOptionalAction, default=True,
                         help="re-solve the pruned layers by least squares before distilling (default: on)")
    distill.add_argument("--curve", type=float, metavar="M", help="score the student every M minutes of training")
    parser.add_argument("--decoder", help="an ONNX --model: the decoder of its outputs, e.g. yolox")


def build_parser() -> argparse.ArgumentParser:
    from edge.backends import BACKEND_NAMES
    from edge.backends.trt_api import PRECISIONS
    from edge.decoders import DECODERS
    from edge.engines import DEFAULT_WORKSPACE_MIB

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser = argparse.ArgumentParser(prog="edge", description="Computer vision on Jetson-class devices.",
                                     parents=[common])
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", parents=[common], help="replay the sample footage through sample models")
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument("--assets", help="assets folder (default: $EDGE_ASSETS or ../shared/assets)")
    demo.set_defaults(func=cmd_demo)

    doctor = commands.add_parser("doctor", parents=[common], help="what this machine can run")
    doctor.set_defaults(func=cmd_doctor)

    bundle = commands.add_parser("bundle", parents=[common], help="bundle tools")
    bundle_commands = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    create = bundle_commands.add_parser("create", parents=[common], help="wrap an ONNX model into a bundle")
    create.add_argument("--onnx", required=True, help="the ONNX model")
    create.add_argument("--task", required=True, choices=TASKS)
    create.add_argument("--decoder", required=True, choices=sorted(DECODERS))
    create.add_argument("--out", required=True, help="bundle folder to write")
    create.add_argument("--name", help="bundle name (default: the ONNX file's stem)")
    create.add_argument("--labels", help="text file, one label per line, in class-index order")
    _add_input_options(create, defaults=True)
    create.add_argument("--score", type=float, default=Thresholds.score, help="score threshold")
    create.add_argument("--iou", type=float, default=Thresholds.iou, help="NMS IoU threshold")
    create.add_argument("--decoder-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="decoder setting (VALUE is JSON or a string); repeatable")
    create.add_argument("--file", type=_key_value, action="append", default=[], metavar="ROLE=PATH",
                        help="extra file the decoder needs, e.g. anchors=anchors.npy; repeatable")
    create.add_argument("--needs", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="another bundle of the run this one works on: detector=NAME (top-down pose, "
                             "per-box classification; with classes='[\"person\"]', min_score, expand, "
                             "max_crops) or instances=NAME (panoptic); repeatable")
    create.set_defaults(func=cmd_bundle_create)

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
    _add_compress_options(compile_)
    compile_.add_argument("--int8", action="store_true", help="then quantize to int8 with the accuracy gate "
                          "(as edge quantize; the bundle in --out becomes the int8 one when the gate passes)")
    _add_int8_options(compile_)
    _add_input_options(compile_, defaults=False)
    compile_.set_defaults(func=cmd_compile)

    quantize = commands.add_parser("quantize", parents=[common],
                                   help="INT8 post-training quantization of a bundle, with the accuracy gate")
    quantize.add_argument("bundle", help="the fp32 bundle folder")
    quantize.add_argument("--out", required=True, help="folder for the int8 bundle (written only if the gate passes)")
    _add_int8_options(quantize)
    quantize.set_defaults(func=cmd_quantize)

    engine = commands.add_parser("build-engine", parents=[common],
                                 help="build the bundle's TensorRT engine for this machine (run it on the device)")
    engine.add_argument("bundle", help="bundle folder; the engine is written to its engines/ folder")
    engine.add_argument("--precision", choices=PRECISIONS,
                        help="default: int8 for a quantized (Q/DQ) bundle, else fp16")
    engine.add_argument("--workspace", type=_positive, default=DEFAULT_WORKSPACE_MIB, metavar="MIB",
                        help=f"TensorRT workspace limit in MiB (default: {DEFAULT_WORKSPACE_MIB}, for small devices)")
    engine.add_argument("--dla-core", type=_index, metavar="N",
                        help="run on DLA core N, with GPU fallback (Xavier, Orin)")
    engine.add_argument("--timing-cache", type=Path, metavar="FILE",
                        help="timing cache to reuse and update (default: one per TensorRT version and GPU, "
                             "in ~/.cache/edge/tensorrt)")
    engine.add_argument("--calib", action="append", default=[], metavar="SOURCE",
                        help="calibration frames for int8 without Q/DQ (TensorRT < 11); repeatable")
    engine.add_argument("--calib-frames", type=_positive, default=256, metavar="N",
                        help="calibrate on at most N frames (default: 256)")
    engine.set_defaults(func=cmd_build_engine)

    replay = commands.add_parser("replay", parents=[common], help="run recorded footage through bundles")
    replay.add_argument("source", help="a video file, an image file, an image folder or a glob")
    replay.add_argument("--bundle", action="append", required=True, help="bundle folder; repeatable")
    replay.add_argument("--out", required=True, help="output folder")
    replay.add_argument("--realtime", action="store_true", help="pace frames at the file's own rate")
    replay.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    replay.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    replay.add_argument("--no-engine-build", action="store_true",
                        help="never build a TensorRT engine at load: fall back to ONNX Runtime instead")
    replay.add_argument("--track", action="store_true", help="add track_id to detections (ByteTrack)")
    replay.add_argument("--save-masks", action="store_true",
                        help="write each frame's class/instance/panoptic id maps as PNGs under OUT/<kind>/<bundle>/")
    _add_pipeline_options(replay)
    replay.set_defaults(func=cmd_replay)

    run = commands.add_parser("run", parents=[common], help="the daemon: live sources, all sinks, until stopped")
    run.add_argument("--config", help="YAML config file (see edge/config.py and README)")
    run.add_argument("--source", action="append", help="quick form: a camera, URL, file…; repeatable")
    run.add_argument("--bundle", action="append", help="quick form: bundle folder; repeatable")
    run.add_argument("--out", help="quick form: output folder (default: out/run)")
    run.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    run.add_argument("--no-video", action="store_true", help="quick form: do not write annotated video")
    run.add_argument("--http-port", type=int, help="quick form: serve preview, /metrics and /health on 127.0.0.1")
    run.add_argument("--batch", type=_positive, metavar="N",
                     help="quick form: frames of up to N sources per inference call, where the bundle's batch "
                          "dimension is dynamic (default: the number of sources)")
    _add_pipeline_options(run)
    run.set_defaults(func=cmd_run)
    return parser


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="parallel inference workers (default: 2 on 2+ CPUs)")
    parser.add_argument("--threads", type=int, help="inference threads per worker (default: CPUs / workers)")
    parser.add_argument("--decode", choices=("thread", "process"),
                        help="decode sources in threads or in processes through shared memory")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BaseException as e:  # every failure ends as one line and the contract's exit code
        code, message = _exit_code(e)
        if args.debug:
            traceback.print_exc()
        print(f"edge: error: {message}", file=sys.stderr)
        return code


def _exit_code(error: BaseException) -> tuple[int, str]:
    from streams.sinks import SinkError
    from streams.sources import SourceError

    if isinstance(error, EdgeError):
        return error.exit_code, str(error)
    if isinstance(error, SourceError):
        return 3, str(error)
    if isinstance(error, SinkError):
        return 4, str(error)
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(error, SystemExit):
        raise error
    return 4, f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)"

if __name__ == "__main__":
    sys.exit(main())

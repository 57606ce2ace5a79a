"""``edge compile --prune/--distill``: original → pruned → distilled → ONNX → bundle with its report.

The teacher is always the original model, rebuilt from the same source; the student is a second copy,
pruned, then distilled on frames sampled from the user's footage (:func:`calibration.frames.sample_frames`,
the sampler INT8 calibration uses). Every stage is measured (:mod:`compile.report`) and the whole story —
pruning settings and history, distillation settings and losses, the report — goes into ``bundle.json``
under ``compile``, so a bundle says what was done to it and what it cost.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calibration.frames import SampledFrame, sample_frames, split_holdout
from compile import report
from compile.augment import Augment, rect_input
from compile.distill import DistillConfig, Distiller, as_tuple, load_checkpoint, seed_everything
from compile.export import EXPORTER, OPSET
from compile.families import Network
from compile.losses import task_loss
from compile.prune import PruneConfig, dependency_graph, output_layers, prune, replay
from compile.reconstruct import kept_channels, reconstruct
from compile.sensitivity import spared_groups
from compile.threads import ThreadChooser
from edge.bundle import Bundle, InputSpec, write_bundle
from edge.decoders import DECODERS
from edge.errors import UsageError
from edge.paths import make_out_dir
from edge.progress import say

CHECKPOINT = "distill_checkpoint.pt"
# Tasks whose students also see RandAugment: a classifier's or segmenter's answer survives it; a detector's
# boxes on sheared, posterised frames are not what the footage will show.
STRONG_AUGMENTATION = ("classification", "segmentation")
RECONSTRUCT_FRAMES = 16  # plain training frames the pruned layers are re-solved (and ranked) on
REPORT = "report.json"


@dataclass
class Compressed:
    """What :func:`compress` made: the student's ONNX, the report rows, and its bundle when the runtime has
    the network's decoder (without one, ``report.json`` beside the ONNX holds the compile block)."""

    onnx: Path
    rows: list[report.Measurement]
    compile_block: dict[str, Any]
    bundle: Bundle | None


def compress(build: Callable[[], Network], out: Path, *, name: str, prune_config: PruneConfig | None = None,
             distill_config: DistillConfig | None = None, int8: Any = None) -> Compressed:
    """Prunes and/or distils the network ``build()`` makes and writes the result to ``out``; with ``int8`` (a
    :class:`calibration.quantize_bundle.QuantizeConfig`), quantizes the bundle too, and the report gets its row.

    ``build`` is called for the teacher and again for the student (and once more on resume, to rebuild
    the pruned-but-untrained student for the report), so it must return the same weights every time.
    """
    threads = torch.get_num_threads()
    # Pruning, reconstruction and the exports use the same share of the CPU as distillation (compile.threads).
    torch.set_num_threads(distill_config.threads if distill_config and distill_config.threads
                          else ThreadChooser().choose())
    try:
        with warnings.catch_warnings():
            # onnx2torch's modules warn about their own indexing and tracing at every export: not the user's concern
            warnings.filterwarnings("ignore", module="onnx2torch")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            return _compress(build, out, name, prune_config, distill_config, int8)
    finally:
        torch.set_num_threads(threads)


def _compress(build: Callable[[], Network], out: Path, name: str, prune_config: PruneConfig | None,
              distill_config: DistillConfig | None, int8: Any) -> Compressed:
    make_out_dir(out)
    teacher, student = build(), build()
    seed_everything(distill_config.seed if distill_config else 0)
    train, held = _frames(distill_config)
    checkpoint = out / CHECKPOINT
    state = load_checkpoint(checkpoint) if distill_config and distill_config.resume and checkpoint.is_file() else None
    example = teacher.example()
    canvas = _canvas(teacher, distill_config, train)
    augment = Augment(canvas, mixup=bool(distill_config and distill_config.mixup),
                      randaugment=teacher.task in STRONG_AUGMENTATION)
    needs_loss = distill_config is not None or (prune_config is not None and prune_config.importance == "taylor")
    loss = _loss(teacher, distill_config, canvas) if needs_loss else None

    with tempfile.TemporaryDirectory(prefix="edge-compress-") as scratch:
        say("measuring the original model" + (f" on {len(held)} held-out frames" if held else ""))
        judge = report.Judge(teacher, held, Path(scratch))
        rows, final = [judge.original], None
        pruning = None
        if state is not None and state.get("pruning"):
            pruning = state["pruning"]
            replay(student.module, example, pruning["history"], teacher.trace)
            pruned = replay(build().module, example, pruning["history"], teacher.trace)
        elif prune_config is not None:
            say(f"pruning {prune_config.ratio:.0%} of the channels ({prune_config.importance})")
            gradients = _gradient_losses(teacher, loss, augment, train, distill_config)
            images = _plain_images(augment, train) if prune_config.importance == "contribution" \
                or prune_config.macs_budget is not None else None
            spared, costs = _spared(teacher, loss, prune_config, images)
            pruning = prune(student.module, example, prune_config, keep=teacher.keep + tuple(spared),
                            trace=teacher.trace, gradient_losses=gradients if prune_config.importance == "taylor"
                            else None, images=images).to_json(prune_config)
            if costs:
                pruning["spared"] = spared
                pruning["group_costs"] = [asdict(cost) for cost in costs]
                share = pruning["macs"][1] / pruning["macs"][0]
                if share > prune_config.macs_budget:
                    say(f"the pruned model keeps {share:.2f}x of the MACs, over --prune-macs "
                        f"{prune_config.macs_budget}: prune a larger share (--prune)")
            pruned = student.module
        if pruning is not None:
            row, final = judge.measure("pruned", pruned)
            rows.append(row)
            if train and distill_config.reconstruct:
                pruning["reconstructed_layers"] = _reconstruct(teacher, pruned, build, pruning["history"],
                                                               augment, train)
                row, final = judge.measure("reconstructed", pruned)
                rows.append(row)
        distillation = None
        if distill_config is not None:
            distillation = _distil(teacher, student, loss, augment, distill_config, train, checkpoint, state,
                                   {"pruning": pruning}, judge)
            row, final = judge.measure("distilled", student.module)
            rows.append(row)
        shutil.copyfile(final, out / "model.onnx")
        say("timing every stage's model on this CPU")
        rows = judge.timed(rows)
        block = {"opset": OPSET, "exporter": EXPORTER, "pruning": pruning, "distillation": distillation,
                 "report": report.report_json(rows, teacher.task, len(held), judge.floor)}
        bundle = _write(out, name, student, block)  # stays as it is if --int8 then fails its gate
        if int8 is not None:
            bundle, rows = _quantize(bundle, out, int8, judge, rows, block)
    return Compressed(out / "model.onnx", rows, block, bundle)


def _quantize(bundle: Bundle | None, out: Path, config: Any, judge: report.Judge, rows: list[report.Measurement],
              block: dict[str, Any]) -> tuple[Bundle, list[report.Measurement]]:
    """The chain's last stage, through calibration's public entry point (the one place compile calls it): the
    bundle in ``out`` becomes the int8 one, and its report gets the int8 row (agreement with the original), every
    row timed again in turns with it."""
    from calibration.quantize_bundle import quantize_bundle

    if bundle is None:
        raise UsageError("--int8: the runtime has no decoder for this model, so there is no bundle to quantize")
    say("quantizing to int8 with the accuracy gate")
    quantized = quantize_bundle(bundle, out, config).bundle
    rows = judge.timed([*rows, judge.measure_files("int8", rows[-1], quantized.file("model"),
                                                   quantized.file("model_cpu"))])
    block["report"]["rows"] = [asdict(row) for row in rows]
    return write_bundle(out, name=quantized.name, task=quantized.task, decoder=quantized.decoder,
                        input=quantized.input, labels=quantized.labels, thresholds=quantized.thresholds,
                        files=quantized.files, provenance=quantized.provenance, decoder_args=quantized.decoder_args,
                        precision=quantized.precision, cpu_precision=quantized.cpu_precision,
                        extra={**quantized.extra, "compile": block}), rows


def _frames(config: DistillConfig | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training frames, held-out frames) from the user's footage; none without ``--distill``."""
    if config is None:
        return [], []
    sampled = sample_frames(list(config.sources), config.frames)
    if config.holdout_split == "spread":
        train, held = split_holdout(sampled, config.holdout)
    else:
        train, held = split_end(sampled, config.holdout)
    return [f.image for f in train], [f.image for f in held]


def split_end(frames: Sequence[SampledFrame], holdout: float) -> tuple[list[SampledFrame], list[SampledFrame]]:
    """(training, held-out): the last ``holdout`` share of each source's sampled frames is held out, so the
    report scores footage recorded after everything trained on, as a camera's next hours would be."""
    train, held = [], []
    for source in dict.fromkeys(f.source for f in frames):
        mine = [f for f in frames if f.source == source]
        cut = len(mine) - max(1, round(len(mine) * holdout))
        train += mine[:cut]
        held += mine[cut:]
    return train, held


def _canvas(network: Network, config: DistillConfig | None, train: Sequence[np.ndarray]) -> InputSpec:
    """The input spec training batches are made for: the model's own, or with ``--rect`` the letterboxed
    footage's (:func:`compile.augment.rect_input`), on which the model must run."""
    if config is None or not config.rect:
        return network.input
    try:
        canvas = rect_input(network.input, train)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        with torch.no_grad():
            network.module(torch.zeros(canvas.shape))
    except Exception as e:  # a graph with sizes fixed at export time fails here, in whatever way it fails
        raise UsageError(f"--rect: the model does not run on a {canvas.width}x{canvas.height} canvas ({e}); "
                         f"distil without --rect") from None
    say(f"distilling on {canvas.width}x{canvas.height} canvases (--rect; the model's input is "
        f"{network.input.width}x{network.input.height})")
    return canvas


def _loss(network: Network, config: DistillConfig | None, canvas: InputSpec) -> torch.nn.Module:
    """The distillation loss of ``network``'s outputs on ``canvas``-sized inputs."""
    if network.head is None:
        raise UsageError(f"--distill/--prune-importance taylor: no distillation loss fits the outputs of a "
                         f"'{network.decoder}' model ({', '.join(network.output_names)}); prune it by magnitude only")
    with torch.no_grad():
        shapes = [tuple(t.shape) for t in as_tuple(network.module(torch.zeros(canvas.shape)))]
    temperature = config.temperature if config else DistillConfig.temperature
    return task_loss(network.head, temperature, shapes, (canvas.width, canvas.height))


def _gradient_losses(teacher: Network, loss: torch.nn.Module, augment: Augment, frames: Sequence[np.ndarray],
                     config: DistillConfig | None) -> Callable[[torch.nn.Module], Iterator[torch.Tensor]]:
    """Taylor importance's losses: the student against the teacher's hard decisions on augmented frames."""
    batch = config.batch if config else 8

    def losses(model: torch.nn.Module) -> Iterator[torch.Tensor]:
        if not frames:
            raise ValueError("Taylor importance needs frames: give --distill SOURCE")
        for start in range(0, len(frames), batch):
            images = augment(frames[start:start + batch])
            with torch.no_grad():
                targets = as_tuple(teacher.module(images))
            yield loss(as_tuple(model(images)), targets, hard=True)
    return losses


def _spared(teacher: Network, loss: torch.nn.Module | None, config: PruneConfig,
            images: torch.Tensor | None) -> tuple[list[str], list]:
    """The groups ``--prune-macs`` leaves whole (:mod:`compile.sensitivity`), and every group's cost; none without
    a budget."""
    if config.macs_budget is None:
        return [], []
    if loss is None or images is None:
        raise UsageError("--prune-macs: needs the distillation loss and frames; give --distill SOURCE")
    say(f"measuring what pruning each channel group costs, to stay within {config.macs_budget:.2f}x MACs")
    spared, costs = spared_groups(teacher.module, teacher.example(), config, config.macs_budget, images,
                                  lambda ours, theirs: loss(as_tuple(ours), as_tuple(theirs)), keep=teacher.keep,
                                  trace=teacher.trace)
    say(f"sparing {len(spared)} of {len(costs)} channel groups: {', '.join(spared) or 'none'}")
    return spared, costs


def _plain_images(augment: Augment, train: Sequence[np.ndarray]) -> torch.Tensor:
    """``RECONSTRUCT_FRAMES`` training frames spread over the set, un-augmented, as the model's input batch:
    what reconstruction re-solves on and contribution importance measures on."""
    if not train:
        raise ValueError("contribution importance needs frames: give --distill SOURCE")
    frames = train[::max(1, len(train) // RECONSTRUCT_FRAMES)][:RECONSTRUCT_FRAMES]
    return augment.normalise(torch.stack([augment.view(frame, 0, 0) for frame in frames]))


def _reconstruct(teacher: Network, pruned: torch.nn.Module, build: Callable[[], Network], history: list,
                 augment: Augment, train: Sequence[np.ndarray]) -> int:
    """Re-solves the pruned convolutions on plain training frames (:mod:`compile.reconstruct`); returns how many."""
    images = _plain_images(augment, train)
    say(f"reconstructing the pruned layers on {len(images)} frames")
    kept = kept_channels(build().module, teacher.example(), history, teacher.trace)
    return len(reconstruct(teacher.module, pruned, kept, images))


def _distil(teacher: Network, student: Network, loss: torch.nn.Module, augment: Augment, config: DistillConfig,
            train: Sequence[np.ndarray], checkpoint: Path, state: dict | None, extra_state: dict,
            judge: report.Judge) -> dict[str, Any]:
    if teacher.backbone:
        def frozen(name: str) -> bool:
            return name.startswith(tuple(f"{prefix}." for prefix in teacher.backbone))
    else:
        heads = _output_layer_names(teacher)

        def frozen(name: str) -> bool:
            return name.rpartition(".")[0] not in heads
    distiller = Distiller(teacher.module, student.module, loss, augment, config, frozen, teacher.feature_layer)
    if state is not None:
        distiller.load_state(state, teacher.example())
    losses = distiller.fit(train, checkpoint, extra_state, on_epoch=_curve(config, distiller, judge))
    return {**asdict(config), "sources": list(config.sources), "device": str(distiller.device),
            "train_frames": len(train), "canvas": [augment.spec.width, augment.spec.height], "epoch_losses": losses,
            "resumed_at_epoch": state["epoch"] if state else None, "seconds": round(distiller.seconds, 1),
            "epochs_run": distiller.history}


def _curve(config: DistillConfig, distiller: Distiller, judge: report.Judge) -> Callable[[dict], None] | None:
    """The epoch hook that scores the student on the held-out frames every ``curve_minutes`` of training."""
    if config.curve_minutes is None or not judge.held:
        return None
    last = [-float("inf")]

    def score(record: dict[str, Any]) -> None:
        if record["seconds"] - last[0] >= config.curve_minutes * 60 or record["epoch"] == config.epochs:
            last[0] = record["seconds"]
            found = judge.agreement(judge.export("curve", distiller.student))
            record["agreement"] = {"metric": found.metric, "score": found.score,
                                   **{k: v[0] for k, v in found.details.items() if k.endswith("mAP@0.5")}}
            say(f"agreement after {record['seconds']:.0f} s of training: {found.describe()}")
    return score


def _output_layer_names(network: Network) -> set[str]:
    names = {module: name for name, module in network.module.named_modules()}
    return {names[m] for m in output_layers(dependency_graph(network.module, network.example(), network.trace))}


def _write(out: Path, name: str, network: Network, block: dict[str, Any]) -> Bundle | None:
    if network.decoder not in DECODERS:
        (out / REPORT).write_text(json.dumps({"decoder": network.decoder, "compile": block}, indent=2) + "\n")
        return None
    files = {"model": "model.onnx"}
    for role, (file_name, contents) in network.extra_files.items():
        (out / file_name).write_bytes(contents)
        files[role] = file_name
    return write_bundle(out, name=name, task=network.task, decoder=network.decoder, input=network.input,
                        labels=network.labels, thresholds=network.thresholds, files=files,
                        decoder_args=network.decoder_args, provenance=network.source, extra={"compile": block})

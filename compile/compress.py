"""``edge compile --prune/--distill``: original → pruned → distilled → ONNX → bundle with its report.

The teacher is always the original model, rebuilt from the same source; the student is a second copy,
pruned, then distilled on frames sampled from the user's footage (:func:`calibration.frames.sample_frames`,
the sampler INT8 calibration uses). Every stage is measured (:mod:`compile.report`) and the whole story —
pruning settings and history, distillation settings and losses, the report — goes into ``bundle.json``
under ``compile``, so a bundle says what was done to it and what it cost.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calibration.agreement import task_agreement
from calibration.frames import sample_frames, split_holdout
from calibration.measure import cpu_latency_ms
from compile import report
from compile.augment import Augment, frame_tensors
from compile.distill import DistillConfig, Distiller, as_tuple, load_checkpoint, seed_everything
from compile.export import EXPORTER, OPSET, export_onnx
from compile.families import Network
from compile.losses import task_loss
from compile.prune import PruneConfig, cost, dependency_graph, output_layers, prune, replay
from edge.bundle import Bundle, write_bundle
from edge.decoders import DECODERS
from edge.errors import UsageError
from edge.paths import make_out_dir

CHECKPOINT = "distill_checkpoint.pt"
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
             distill_config: DistillConfig | None = None) -> Compressed:
    """Prunes and/or distils the network ``build()`` makes and writes the result to ``out``.

    ``build`` is called for the teacher and again for the student (and once more on resume, to rebuild
    the pruned-but-untrained student for the report), so it must return the same weights every time.
    """
    with warnings.catch_warnings():
        # onnx2torch's modules warn about their own indexing and tracing at every export: not the user's concern
        warnings.filterwarnings("ignore", module="onnx2torch")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return _compress(build, out, name, prune_config, distill_config)


def _compress(build: Callable[[], Network], out: Path, name: str, prune_config: PruneConfig | None,
              distill_config: DistillConfig | None) -> Compressed:
    make_out_dir(out)
    teacher, student = build(), build()
    seed = distill_config.seed if distill_config else 0
    seed_everything(seed)
    train, held = _frames(distill_config)
    checkpoint = out / CHECKPOINT
    state = load_checkpoint(checkpoint) if distill_config and distill_config.resume and checkpoint.is_file() else None
    example = teacher.example()
    heads = _output_layer_names(teacher, example)
    augment = Augment(teacher.input, mixup=bool(distill_config and distill_config.mixup))
    needs_loss = distill_config is not None or (prune_config is not None and prune_config.importance == "taylor")
    loss = _loss(teacher, distill_config) if needs_loss else None

    with tempfile.TemporaryDirectory(prefix="edge-compress-") as scratch:
        rows = [_measure("original", teacher, Path(scratch) / "original.onnx", held, None)]
        reference = rows[0].predictions
        pruning = None
        if state is not None and state.get("pruning"):
            pruning = state["pruning"]
            replay(student.module, example, pruning["history"], teacher.trace)
            pruned_only = replay(build().module, example, pruning["history"], teacher.trace)
        elif prune_config is not None:
            gradients = _gradient_losses(teacher, loss, augment, train, distill_config)
            pruning = prune(student.module, example, prune_config, keep=teacher.keep, trace=teacher.trace,
                            gradient_losses=gradients if prune_config.importance == "taylor" else None
                            ).to_json(prune_config)
            pruned_only = student.module
        final = out / "model.onnx"
        if pruning is not None:
            rows.append(_measure("pruned", replace(student, module=pruned_only),
                                 Path(scratch) / "pruned.onnx" if distill_config else final, held, reference))
        distillation = None
        if distill_config is not None:
            distillation = _distil(teacher, student, loss, augment, distill_config, train, heads, checkpoint,
                                   state, {"pruning": pruning})
            rows.append(_measure("distilled", student, final, held, reference))
    rows = [row.measurement for row in rows]
    block = {"opset": OPSET, "exporter": EXPORTER, "pruning": pruning, "distillation": distillation,
             "report": report.report_json(rows, teacher.task, len(held))}
    return Compressed(final, rows, block, _write(out, name, student, block))


@dataclass
class _Row:
    measurement: report.Measurement
    predictions: list


def _measure(stage: str, network: Network, onnx: Path, held: Sequence[np.ndarray], reference: list | None) -> _Row:
    module = network.module.cpu().eval()
    export_onnx(module, network.example(), onnx, input_name=network.input.name, output_names=network.output_names)
    params, macs = cost(module, network.example())
    found = report.predictions(onnx, network, held) if held else []
    agreement = None if not held else 1.0 if reference is None else \
        task_agreement(network.task, reference, found, len(network.labels))
    return _Row(report.Measurement(stage, params, macs, cpu_latency_ms(onnx, network.input), agreement), found)


def _frames(config: DistillConfig | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training frames, held-out frames) from the user's footage; none without ``--distill``."""
    if config is None:
        return [], []
    train, held = split_holdout(sample_frames(list(config.sources), config.frames), config.holdout)
    return [f.image for f in train], [f.image for f in held]


def _loss(network: Network, config: DistillConfig | None) -> torch.nn.Module:
    if network.head is None:
        raise UsageError(f"--distill/--prune-importance taylor: no distillation loss fits the outputs of a "
                         f"'{network.decoder}' model ({', '.join(network.output_names)}); prune it by magnitude only")
    with torch.no_grad():
        shapes = [tuple(t.shape) for t in as_tuple(network.module(network.example()))]
    temperature = config.temperature if config else DistillConfig.temperature
    return task_loss(network.head, temperature, shapes, (network.input.width, network.input.height))


def _output_layer_names(network: Network, example: torch.Tensor) -> set[str]:
    names = {module: name for name, module in network.module.named_modules()}
    return {names[m] for m in output_layers(dependency_graph(network.module, example, network.trace))}


def _gradient_losses(teacher: Network, loss: torch.nn.Module, augment: Augment, frames: Sequence[np.ndarray],
                     config: DistillConfig | None) -> Callable[[torch.nn.Module], Iterator[torch.Tensor]]:
    """Taylor importance's losses: the student against the teacher's hard decisions on augmented frames."""
    tensors = frame_tensors(frames)
    batch = config.batch if config else 8

    def losses(model: torch.nn.Module) -> Iterator[torch.Tensor]:
        if not tensors:
            raise ValueError("Taylor importance needs frames: give --distill SOURCE")
        for start in range(0, len(tensors), batch):
            images = augment(tensors[start:start + batch])
            with torch.no_grad():
                targets = as_tuple(teacher.module(images))
            yield loss(as_tuple(model(images)), targets, hard=True)
    return losses


def _distil(teacher: Network, student: Network, loss: torch.nn.Module, augment: Augment, config: DistillConfig,
            train: Sequence[np.ndarray], heads: set[str], checkpoint: Path, state: dict | None,
            extra_state: dict) -> dict[str, Any]:
    if teacher.backbone:
        def frozen(name: str) -> bool:
            return name.startswith(tuple(f"{prefix}." for prefix in teacher.backbone))
    else:
        def frozen(name: str) -> bool:
            return name.rpartition(".")[0] not in heads
    distiller = Distiller(teacher.module, student.module, loss, augment, config, frozen, teacher.feature_layer)
    if state is not None:
        distiller.load_state(state, teacher.example())
    losses = distiller.fit(frame_tensors(train), checkpoint, extra_state)
    return {**asdict(config), "sources": list(config.sources), "device": str(distiller.device),
            "train_frames": len(train), "epoch_losses": losses, "resumed_at_epoch": state["epoch"] if state else None}


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

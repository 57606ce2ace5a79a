"""Knowledge distillation: the pruned student learns to reproduce the unpruned teacher on the user's footage.

The teacher's outputs are the pseudo-labels, so no annotation is needed. Every batch is augmented once
and fed to both models (:mod:`compile.augment`); the loss compares raw outputs (:mod:`compile.losses`),
optionally plus backbone features through 1x1 adapters.

Runs are reproducible: one seed sets torch's generator (which drives shuffling and augmentation), and
deterministic kernels are requested. After every epoch a checkpoint holds the student, the optimizer,
the feature adapters, the epoch and the generator state, so a resumed run continues exactly where the
interrupted one stopped and ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compile.augment import Augment
from compile.losses import FeatureLoss

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DistillConfig:
    """``edge compile --distill SOURCE ...`` and its options."""

    sources: tuple[str, ...]
    frames: int = 200  # frames sampled from the sources (spread over time, duplicates dropped)
    holdout: float = 0.2  # fraction of them kept out of training, for the agreement report
    epochs: int = 10
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 2.0
    seed: int = 0
    freeze_backbone_epochs: int = 0  # transfer learning: train the heads first, then everything
    features: bool = False  # also distil the backbone's feature maps
    feature_weight: float = 1.0
    mixup: bool = False
    device: str = "auto"
    resume: bool = False

    def __post_init__(self):
        if not self.sources:
            raise ValueError("distillation needs at least one source")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not '{self.device}'")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when PyTorch sees a GPU, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seeds torch and asks for deterministic kernels (warning, not failing, where one has none)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS is only deterministic with it
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


class FeatureTap:
    """Keeps the last output of one submodule (a tensor, or the tensors of a dict/tuple) via a forward hook."""

    def __init__(self, module: nn.Module, name: str):
        self.maps: list[torch.Tensor] = []
        self.handle = module.get_submodule(name).register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: Any) -> None:
        values = output.values() if isinstance(output, dict) else output if isinstance(output, tuple) else [output]
        self.maps = [v for v in values if isinstance(v, torch.Tensor) and v.ndim == 4]


def as_tuple(outputs: Any) -> tuple[torch.Tensor, ...]:
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


class Distiller:
    """Trains ``student`` toward ``teacher`` (both take the same normalised input) with ``loss``.

    ``frozen_while_warming`` says which parameters ``freeze_backbone_epochs`` freezes (by name).
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, loss: nn.Module, augment: Augment,
                 config: DistillConfig, frozen_while_warming: Callable[[str], bool], feature_layer: str | None = None):
        self.config = config
        self.device = resolve_device(config.device)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        self.student = student.to(self.device)
        self.loss = loss.to(self.device)
        self.augment = augment
        self.frozen = [p for name, p in student.named_parameters() if frozen_while_warming(name)]
        self.features = FeatureLoss().to(self.device) if config.features and feature_layer else None
        self.taps = (FeatureTap(teacher, feature_layer), FeatureTap(student, feature_layer)) if self.features else None
        self.optimizer: torch.optim.Optimizer | None = None  # made on the first batch, once adapters exist
        self.epoch = 0

    def fit(self, frames: Sequence[torch.Tensor], checkpoint: Path | None = None,
            extra_state: dict[str, Any] | None = None) -> list[float]:
        """Runs the remaining epochs; returns the mean loss of each epoch run. ``extra_state`` is saved in
        every checkpoint too (the pipeline keeps the pruning history there, to rebuild the student)."""
        losses = []
        for epoch in range(self.epoch, self.config.epochs):
            for parameter in self.frozen:
                parameter.requires_grad_(epoch >= self.config.freeze_backbone_epochs)
            losses.append(self._epoch(frames, epoch))
            self.epoch = epoch + 1
            if checkpoint is not None:
                save_checkpoint(checkpoint, {**self.state(), **(extra_state or {})})
        return losses

    def _epoch(self, frames: Sequence[torch.Tensor], epoch: int) -> float:
        self.student.train()
        for module in self.student.modules():  # a few hundred frames in small batches give noisier statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm):  # than those the model was trained with
                module.eval()
        order = torch.randperm(len(frames)).tolist()
        batches = [order[i:i + self.config.batch] for i in range(0, len(order), self.config.batch)]
        total, started = 0.0, time.monotonic()
        for step, indices in enumerate(batches, start=1):
            loss = self._step(self.augment([frames[i] for i in indices]).to(self.device))
            total += loss
            _progress(f"epoch {epoch + 1}/{self.config.epochs} batch {step}/{len(batches)} "
                      f"loss {total / step:.4f} ({time.monotonic() - started:.0f} s)", final=step == len(batches))
        self.student.eval()
        return total / max(len(batches), 1)

    def _step(self, images: torch.Tensor) -> float:
        with torch.no_grad():
            targets = as_tuple(self.teacher(images))
        loss = self.loss(as_tuple(self.student(images)), targets)
        if self.features is not None:
            teacher_tap, student_tap = self.taps
            loss = loss + self.config.feature_weight * self.features(student_tap.maps, teacher_tap.maps)
        if self.optimizer is None:
            self.optimizer = self._make_optimizer()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _make_optimizer(self) -> torch.optim.Optimizer:
        parameters = list(self.student.parameters()) + (list(self.features.parameters()) if self.features else [])
        return torch.optim.AdamW(parameters, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"epoch": self.epoch, "student": self.student.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "features": None if self.features is None else self.features.state_dict(),
                "rng": rng, "config": asdict(self.config)}

    def load_state(self, state: dict[str, Any], example: torch.Tensor) -> None:
        """Restores a checkpoint taken by :meth:`fit` (on a student of the same pruned shape)."""
        self.student.load_state_dict(state["student"])
        self.epoch = state["epoch"]
        if self.features is not None and state["features"] is not None:
            with torch.no_grad():  # one pass creates the adapters, whose sizes the maps decide
                self.teacher(example.to(self.device)), self.student(example.to(self.device))
                self.features(self.taps[1].maps, self.taps[0].maps)
            self.features.load_state_dict(state["features"])
        if state["optimizer"] is not None:
            self.optimizer = self._make_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written to a side file and renamed, so an interruption mid-write leaves the previous checkpoint."""
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _progress(line: str, final: bool) -> None:
    """One line per epoch on stderr; on a terminal it is also rewritten after every batch."""
    if sys.stderr.isatty():
        print(f"\r{line}", end="\n" if final else "", file=sys.stderr, flush=True)
    elif final:
        print(line, file=sys.stderr, flush=True)

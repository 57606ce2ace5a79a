"""Knowledge distillation: the pruned student learns to reproduce the unpruned teacher on the user's footage.

The teacher's outputs are the pseudo-labels, so no annotation is needed. Every batch is augmented once
and fed to both models (:mod:`compile.augment`); the loss compares raw outputs (:mod:`compile.losses`),
optionally plus backbone features through 1x1 adapters. Where the augmentation allows (no mixup, no feature
maps), the views are fixed and the teacher's outputs on them cached (:mod:`compile.teacher_cache`).

A student without normalisation layers (an export with BatchNorm folded into its convolutions, YOLOX-nano)
gets, unless ``relative_lr`` says otherwise, a learning rate per tensor, ``lr × RMS(tensor)``, as Adafactor's
relative step: folding leaves weight scales that differ by orders of magnitude between layers (YOLOX-nano's
stem reads 0..255 pixels, its weights are ~1e-3), and Adam moves every element by about ``lr`` whatever its
scale, so one step at 1e-4 rewrote the smallest layers and took a reconstructed student's agreement from 0.6
to 0. With normalisation layers the scales are tamed by them and ``lr`` is the plain one.

``warmup_steps`` raise the rate linearly at the start, as YOLOX and Ultralytics train: Adam's first steps move
every weight by the full rate in the sign of its gradient, and a student that starts close to the teacher
(reconstructed after pruning) is thrown far from it; one step at a relative 1e-3 took YOLOX-nano pruned by 2 %
from a loss of 1.37 to 7.4. ``schedule="cosine"`` lowers the rate to 0 by the last epoch or the time budget's
end, whichever comes first; ``schedule="wsd"`` (warmup-stable-decay) keeps it until the last fifth of training
and lowers it linearly to 0 there, so that most of the budget runs at the full rate, which a heavily pruned
student needs to learn fast enough, and the end settles the weights: the full rate's steps are noisy enough to
take YOLOX-nano pruned by 2 % from an agreement of 0.973 with the teacher to 0.955, and the decay brings it back
to 0.970.

On the CPU the loop takes as many threads as other processes leave cores free, chosen again every epoch
(:mod:`compile.threads`); ``threads`` fixes the count. A time budget (``minutes``) stops training at the
step that spends it.

Runs are reproducible: one seed sets torch's generator (which drives shuffling and augmentation), and
deterministic kernels are requested; CPU results also depend on the thread count, so an exact repeat needs
a fixed ``threads``. After every epoch a checkpoint holds the student, the optimizer, the feature adapters,
the epoch, the training time and the generator state, so a resumed run continues exactly where the
interrupted one stopped and ends with the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compile.augment import Augment
from compile.losses import FeatureLoss
from compile.teacher_cache import TeacherCache, as_tuple
from compile.threads import ThreadChooser
from edge.progress import bar, say

DEVICES = ("auto", "cpu", "cuda")
# Smallest scale a tensor's relative learning rate uses (Adafactor's ε₂), so a zero-initialised bias still moves.
RMS_FLOOR = 1e-3
NORMALISATION = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
HOLDOUT_SPLITS = ("spread", "end")
SCHEDULES = ("constant", "cosine", "wsd")
DECAY_SHARE = 0.2  # the "wsd" schedule's decay: the last fifth of the epochs or the time budget


@dataclass(frozen=True)
class DistillConfig:
    """``edge compile --distill SOURCE ...`` and its options."""

    sources: tuple[str, ...]
    frames: int = 200  # frames sampled from the sources (spread over time, duplicates dropped)
    holdout: float = 0.2  # fraction of them kept out of training, for the agreement report
    holdout_split: str = "spread"  # "spread": every k-th sampled frame; "end": the last of each source
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
    threads: int | None = None  # CPU threads; None: the cores other processes leave free, chosen every epoch
    rect: bool = False  # distil on the letterboxed footage's own aspect, not the full canvas (compile.augment)
    views: int = 4  # fixed views per frame whose teacher outputs are cached (0: a fresh augmentation every step)
    minutes: float | None = None  # training time budget: training stops at the step that spends it
    reconstruct: bool = True  # re-solve the pruned layers by least squares before training (compile.reconstruct)
    curve_minutes: float | None = None  # score the student on the held-out frames this often (the report's curve)
    relative_lr: bool | None = None  # lr × RMS(tensor) per tensor; None: where the student has no normalisation
    # learning rate: "constant"; "cosine" down to 0 at the last epoch or the budget's end; "wsd" constant, then
    # linearly down to 0 over the last DECAY_SHARE of them
    schedule: str = "constant"
    warmup_steps: int = 0  # the rate rises linearly from lr / warmup_steps to lr over the first optimizer steps

    def __post_init__(self):
        if not self.sources:
            raise ValueError("distillation needs at least one source")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, not {self.threads}")
        if self.views < 0:
            raise ValueError(f"views must be 0 (no cache) or more, not {self.views}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup steps must be 0 (none) or more, not {self.warmup_steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"the time budget must be positive, not {self.minutes} minutes")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not '{self.schedule}'")
        if self.holdout_split not in HOLDOUT_SPLITS:
            raise ValueError(f"holdout split must be one of {', '.join(HOLDOUT_SPLITS)}, not '{self.holdout_split}'")
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


# Called after every epoch with its record (epoch, loss, seconds, threads, teacher_images); it may add to it.
EpochHook = Callable[[dict[str, Any]], None]


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
        self.seconds = 0.0  # training time so far, carried over by a resume
        self.history: list[dict[str, Any]] = []  # one record per epoch run
        self.cache: TeacherCache | None = None
        self.threads = ThreadChooser()

    def fit(self, frames: Sequence[np.ndarray], checkpoint: Path | None = None,
            extra_state: dict[str, Any] | None = None, on_epoch: EpochHook | None = None) -> list[float]:
        """Runs the remaining epochs on ``frames`` (BGR images) and returns the mean loss of each epoch run.
        ``extra_state`` is saved in every checkpoint too (the pipeline keeps the pruning history there, to
        rebuild the student); ``on_epoch`` sees every epoch's record before it is saved."""
        config = self.config
        cached = config.views > 0 and not config.mixup and self.features is None
        self.cache = TeacherCache(self.teacher, self.augment, frames, config.views, config.seed, self.device) \
            if cached else None
        threads_before, losses = torch.get_num_threads(), []
        try:
            for epoch in range(self.epoch, config.epochs):
                if self._out_of_time():
                    break
                for parameter in self.frozen:
                    parameter.requires_grad_(epoch >= config.freeze_backbone_epochs)
                record = self._epoch(frames, epoch)
                losses.append(record["loss"])
                self.epoch = epoch + 1
                if on_epoch is not None:
                    on_epoch(record)
                self.history.append(record)
                if checkpoint is not None:
                    save_checkpoint(checkpoint, {**self.state(), **(extra_state or {})})
        finally:
            torch.set_num_threads(threads_before)
        return losses

    def _out_of_time(self, running: float = 0.0) -> bool:
        """Whether the time budget is spent (``running``: seconds of the epoch in progress)."""
        return self.config.minutes is not None and self.seconds + running >= self.config.minutes * 60

    def _epoch(self, frames: Sequence[np.ndarray], epoch: int) -> dict[str, Any]:
        threads = self._set_threads()
        self.student.train()
        for module in self.student.modules():  # a few hundred frames in small batches give noisier statistics
            if isinstance(module, nn.modules.batchnorm._BatchNorm):  # than those the model was trained with
                module.eval()
        order = torch.randperm(len(frames)).tolist()
        batches = [order[i:i + self.config.batch] for i in range(0, len(order), self.config.batch)]
        total, steps, started = 0.0, 0, time.monotonic()
        steps_before = sum(record["steps"] for record in self.history)
        with bar(total=len(batches), desc=f"distil epoch {epoch + 1}/{self.config.epochs}", unit="batch") as shown:
            for step, indices in enumerate(batches):
                rate = self._rate(steps_before + step, epoch + step / len(batches), time.monotonic() - started)
                if self.cache is not None:
                    images, targets = self.cache.batch(indices)
                else:
                    images, targets = self.augment([frames[i] for i in indices]).to(self.device), None
                total += self._step(images, targets, rate)
                steps += 1
                shown.set_postfix(loss=f"{total / steps:.4f}", refresh=False)
                shown.update()
                if self._out_of_time(time.monotonic() - started):
                    break
        self.seconds += time.monotonic() - started
        self.student.eval()
        record = {"epoch": epoch + 1, "loss": total / max(steps, 1), "steps": steps, "seconds": round(self.seconds, 1),
                  "threads": threads, "teacher_images": self.cache.teacher_images if self.cache else None}
        say(f"distil epoch {epoch + 1}/{self.config.epochs}: loss {record['loss']:.4f}, {steps} batches, "
            f"{self.seconds:.0f} s so far, {threads} thread{'s' if threads > 1 else ''}")
        return record

    def _rate(self, steps_done: int, epochs_done: float, running: float) -> float:
        """The next step's learning rate as a share of ``lr``: the warmup's linear rise over its first steps, times
        the schedule's factor, whose share of training done is that of the epochs or of the time budget,
        whichever is further along (a budget's end is only known in seconds)."""
        rate = min(1.0, (steps_done + 1) / self.config.warmup_steps) if self.config.warmup_steps else 1.0
        if self.config.schedule == "constant":
            return rate
        done = epochs_done / self.config.epochs
        if self.config.minutes is not None:
            done = max(done, (self.seconds + running) / (self.config.minutes * 60))
        if self.config.schedule == "cosine":
            return rate * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        return rate * min(1.0, max(0.0, (1 - done) / DECAY_SHARE))

    def _set_threads(self) -> int:
        """The CPU thread count of this epoch: the configured one, else as many as the machine has free cores."""
        if self.device.type == "cpu":
            torch.set_num_threads(self.config.threads or self.threads.choose())
        return torch.get_num_threads()

    def _step(self, images: torch.Tensor, targets: tuple[torch.Tensor, ...] | None = None, rate: float = 1.0) -> float:
        """One optimizer step on ``images`` at ``rate`` × each group's initial rate (:meth:`_rate`); ``targets``: the
        teacher's outputs on them, where already known."""
        if targets is None:
            with torch.no_grad():
                targets = as_tuple(self.teacher(images))
        loss = self.loss(as_tuple(self.student(images)), targets)
        if self.features is not None:
            teacher_tap, student_tap = self.taps
            loss = loss + self.config.feature_weight * self.features(student_tap.maps, teacher_tap.maps)
        if self.optimizer is None:
            self.optimizer = self._make_optimizer()
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * rate
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _make_optimizer(self) -> torch.optim.Optimizer:
        parameters = list(self.student.parameters()) + (list(self.features.parameters()) if self.features else [])
        relative = not has_normalisation(self.student) if self.config.relative_lr is None else self.config.relative_lr
        if not relative:
            groups = [{"params": parameters, "initial_lr": self.config.lr}]
        else:
            groups = [{"params": [p], "initial_lr": self.config.lr * max(float(p.detach().pow(2).mean().sqrt()),
                                                                        RMS_FLOOR)} for p in parameters]
        return torch.optim.AdamW([{**group, "lr": group["initial_lr"]} for group in groups], lr=self.config.lr,
                                 weight_decay=self.config.weight_decay)

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"epoch": self.epoch, "student": self.student.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "features": None if self.features is None else self.features.state_dict(),
                "rng": rng, "config": asdict(self.config), "seconds": self.seconds, "history": self.history}

    def load_state(self, state: dict[str, Any], example: torch.Tensor) -> None:
        """Restores a checkpoint taken by :meth:`fit` (on a student of the same pruned shape)."""
        self.student.load_state_dict(state["student"])
        self.epoch, self.seconds, self.history = state["epoch"], state["seconds"], list(state["history"])
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


def has_normalisation(module: nn.Module) -> bool:
    """Whether any layer of ``module`` normalises its activations (BatchNorm, GroupNorm, LayerNorm, …)."""
    return any(isinstance(m, NORMALISATION) for m in module.modules())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Written to a side file and renamed, so an interruption mid-write leaves the previous checkpoint."""
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)

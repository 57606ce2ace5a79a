"""ONNX export and bundle writing with the settings every compiled bundle relies on.

The TorchScript exporter (``dynamo=False``) traces the plain convolutional graphs compile exports
faithfully (and torchvision's R-CNN post-processing, which it was written for) and writes ONE
self-contained ``.onnx`` file (weights inside, no external-data side files), which is what a bundle's
``files`` and their sha256 expect. Opset 17 is what the ONNX Runtime and TensorRT builds of JetPack 5 and
6 both read.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from edge.bundle import Bundle, InputSpec, provenance, sha256_file, write_bundle
from edge.bundle.create import read_labels
from edge.errors import BadInputError, UsageError
from edge.preprocess import IMAGENET_MEAN, IMAGENET_STD

OPSET = 17
EXPORTER = "torchscript"
Checkpoint = str | Path | Mapping[str, str | Path] | None  # one file, or one per network (role → file)


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, *, input_name: str,
                output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]] | None = None) -> None:
    """Traces ``module`` (in eval mode) on ``example`` and writes it to ``path``; the input shape is fixed
    unless ``dynamic_axes`` names axes that vary (a batch of crops, an image pyramid's sizes)."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (see the module docstring); its deprecation and
        # tracer notices would only alarm the user.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[input_name], output_names=list(output_names), do_constant_folding=True,
                          dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()} or None)


def imagenet_input(name: str, width: int, height: int, resize: str = "stretch", pad_value: float = 0.0) -> InputSpec:
    """The input spec of a torchvision model trained on ImageNet-normalised RGB images."""
    return InputSpec(name=name, shape=(1, 3, height, width), layout="nchw", color="rgb", dtype="float32",
                     resize=resize, pad_value=pad_value, mean=IMAGENET_MEAN, std=IMAGENET_STD)



def resolve_labels(labels: str | Path | None, classes: int, defaults: Sequence[str]) -> list[str]:
    """The ``--labels`` file (one label per class), else the model's own names when they fit, else ``class_N``."""
    if labels is not None:
        names = read_labels(labels)
        if len(names) != classes:
            raise BadInputError(f"{labels}: {len(names)} labels, but the model has {classes} classes")
        return names
    if len(defaults) == classes:
        return list(defaults)
    return [f"class_{i}" for i in range(classes)]


def write_compiled(out: Path, model: str, checkpoint: Checkpoint, **bundle: Any) -> Bundle:
    """Writes the bundle of a compiled model: ``bundle`` fields as for :func:`edge.bundle.write_bundle`, plus
    where the weights came from and what compile did."""
    return write_bundle(out, provenance=_provenance(model, checkpoint),
                        extra={"compile": {"model": model, "opset": OPSET, "exporter": EXPORTER}}, **bundle)


def _provenance(model: str, checkpoint: Checkpoint) -> dict[str, Any]:
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    if checkpoint is None:
        return provenance(model, "edge compile", weights="random", **versions)
    if isinstance(checkpoint, Mapping):
        paths = {role: Path(path).resolve() for role, path in checkpoint.items()}
        return provenance(", ".join(str(p) for p in paths.values()), "edge compile", weights="checkpoint",
                          checkpoint={role: str(p) for role, p in paths.items()},
                          checkpoint_sha256={role: sha256_file(p) for role, p in paths.items()}, **versions)
    path = Path(checkpoint).resolve()
    return provenance(str(path), "edge compile", weights="checkpoint", checkpoint=str(path),
                      checkpoint_sha256=sha256_file(path), **versions)


def single_checkpoint(model: str, checkpoint: Checkpoint) -> str | Path | None:
    """The one checkpoint file of a single-network model (a role → file mapping is for MTCNN)."""
    if isinstance(checkpoint, Mapping):
        raise UsageError(f"--checkpoint: {model} is one network; give one FILE, not ROLE=FILE")
    return checkpoint

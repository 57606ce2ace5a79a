"""U-Net (Ronneberger et al., 2015): the encoder–decoder with skip connections, as segmentation_models_pytorch
builds it (``smp.Unet``), exported to ONNX with the ``softmax`` or ``sigmoid`` decoder.

``--model unet`` has smp's default ResNet-34 encoder; ``unet_<encoder>`` names another (:data:`ENCODERS`).
Weights come from either of smp's own ways of saving a model:

- a ``state_dict`` file (``torch.save(model.state_dict(), path)``): keys ``encoder.*``, ``decoder.blocks.*``,
  ``segmentation_head.0.{weight,bias}``, for ``smp.Unet(encoder_name=ENCODER, classes=C)`` with smp's default
  decoder (channels 256, 128, 64, 32, 16, BatchNorm); the class count is read from ``segmentation_head.0.weight``;
- a folder written by ``model.save_pretrained(folder)`` (``config.json`` + ``model.safetensors``), whose config
  names the architecture, encoder and classes itself (it must be a ``Unet``).

One class is a binary mask: the bundle's model ends in a sigmoid and the ``sigmoid`` decoder thresholds it
(``thresholds.score``, 0.5). More classes are exclusive: logits and the ``softmax`` decoder, class 0 the
background. The frame is stretched to the input (512 × 512 by default; both sides must be multiples of 32)
and normalised with ImageNet's mean and std, as smp's encoders were trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compile.checkpoint import load_weights, read_state_dict
from compile.export import Checkpoint, export_onnx, imagenet_input, resolve_labels, single_checkpoint, write_compiled
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.bundle.create import read_labels
from edge.errors import BadInputError, UsageError

DEFAULT_ENCODER = "resnet34"
ENCODERS = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0")
MODELS = ("unet", *(f"unet_{encoder}" for encoder in ENCODERS))
INPUT_SIZE = (512, 512)
HEAD = "segmentation_head.0.weight"
STRIDE = 32  # the encoder halves the size five times
THRESHOLDS = Thresholds(score=0.5)  # a one-class mask: probability 0.5


class Probabilities(nn.Module):
    """A one-class U-Net with its sigmoid, so that the bundle's ``sigmoid`` decoder reads probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(images))


def encoder_of(model: str) -> str:
    if model not in MODELS:
        raise UsageError(f"--model: '{model}' is not a U-Net; U-Nets: {', '.join(MODELS)}")
    return model.removeprefix("unet_") if model != "unet" else DEFAULT_ENCODER


def unet(model: str, checkpoint: str | Path | None, classes: int | None) -> nn.Module:
    """The network (seeded random weights, or the checkpoint's) in eval mode; ``classes`` applies without a
    checkpoint (default 1)."""
    import segmentation_models_pytorch as smp  # imported here: timm, under it, is slow to import

    torch.manual_seed(0)
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.is_dir():
        return _pretrained(smp, path).eval()
    if path is None:
        return smp.Unet(encoder_name=encoder_of(model), encoder_weights=None, classes=classes or 1).eval()
    state_dict = read_state_dict(path)
    if HEAD not in state_dict:
        raise BadInputError(f"{path}: not a U-Net state_dict of segmentation_models_pytorch (no '{HEAD}')")
    net = smp.Unet(encoder_name=encoder_of(model), encoder_weights=None, classes=state_dict[HEAD].shape[0])
    load_weights(net, state_dict, path, model)
    return net.eval()


def _pretrained(smp, folder: Path) -> nn.Module:
    config = folder / "config.json"
    try:
        architecture = json.loads(config.read_text()).get("_model_class")
    except (OSError, ValueError) as e:
        raise BadInputError(f"{folder}: not a folder saved by segmentation_models_pytorch ({e})") from None
    if architecture != "Unet":
        raise BadInputError(f"{config}: a '{architecture}' model, not a Unet")
    return smp.from_pretrained(str(folder))


@dataclass(frozen=True)
class UnetParts:
    """A U-Net as compile exports it and what its bundle says about it."""

    module: nn.Module
    input: InputSpec
    decoder: str  # "sigmoid" (one class) or "softmax"
    labels: list[str]
    output: str
    decoder_args: dict[str, Any]


def network_parts(model: str, checkpoint: str | Path | None, labels: str | Path | None,
                  input_size: tuple[int, int] | None) -> UnetParts:
    """The U-Net ``model`` with the checkpoint's weights (or random ones with ``labels``' count of classes)."""
    net = unet(model, checkpoint, len(read_labels(labels)) if labels is not None and checkpoint is None else None)
    width, height = input_size or INPUT_SIZE
    if width % STRIDE or height % STRIDE:
        raise UsageError(f"--input-size: a U-Net's sides must be multiples of {STRIDE}, not {width}x{height}")
    classes = net.segmentation_head[0].out_channels
    spec = imagenet_input("images", width, height)
    if classes == 1:
        return UnetParts(Probabilities(net), spec, "sigmoid", resolve_labels(labels, 1, ["foreground"]),
                         "probabilities", {})
    return UnetParts(net, spec, "softmax", resolve_labels(labels, classes, [f"class_{i}" for i in range(classes)]),
                     "logits", {"background_class": 0})


def weights_file(checkpoint: str | Path | None) -> Path | None:
    """The file the weights came from, for the bundle's provenance (a save_pretrained folder's safetensors)."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    return path / "model.safetensors" if path.is_dir() else path


def compile_unet(model: str, out: Path, *, checkpoint: Checkpoint, labels: str | Path | None, name: str | None,
                 size: tuple[int, int] | None) -> Bundle:
    checkpoint = single_checkpoint(model, checkpoint)
    parts = network_parts(model, checkpoint, labels, size)
    export_onnx(parts.module, torch.zeros(parts.input.shape), out / "model.onnx", input_name=parts.input.name,
                output_names=[parts.output])
    return write_compiled(out, model, weights_file(checkpoint), name=name or model, task="segmentation",
                          decoder=parts.decoder, input=parts.input, labels=parts.labels, thresholds=THRESHOLDS,
                          files={"model": "model.onnx"}, decoder_args=parts.decoder_args)

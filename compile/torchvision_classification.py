"""torchvision image classifiers → ONNX (logits, dynamic batch) + the ``softmax-topk`` decoder.

The batch axis is exported dynamic, so a classifier that runs on detected boxes classifies all of a
frame's crops in one run. torchvision's resize and normalisation become the bundle's input spec
(stretched to 224 × 224 by default, which classifies the whole frame; torchvision's evaluation crops
the centre, which would cut off a frame's edges).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.models import WeightsEnum

from compile.checkpoint import load_weights, read_state_dict
from compile.export import Checkpoint, export_onnx, imagenet_input, resolve_labels, single_checkpoint, write_compiled
from edge.bundle import Bundle, Thresholds

# Name → (builder, ImageNet weights whose offline metadata names the 1000 classes; nothing is downloaded).
CLASSIFIERS: dict[str, tuple[Callable[..., nn.Module], WeightsEnum]] = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    "resnet50": (models.resnet50, models.ResNet50_Weights.IMAGENET1K_V2),
    "googlenet": (models.googlenet, models.GoogLeNet_Weights.IMAGENET1K_V1),
    "densenet121": (models.densenet121, models.DenseNet121_Weights.IMAGENET1K_V1),
    "mobilenet_v3_large": (models.mobilenet_v3_large, models.MobileNet_V3_Large_Weights.IMAGENET1K_V2),
    "mobilenet_v3_small": (models.mobilenet_v3_small, models.MobileNet_V3_Small_Weights.IMAGENET1K_V1),
}
# As torchvision builds GoogLeNet for its ImageNet weights: the input re-normalisation those weights expect,
# without the training-only auxiliary heads (whose keys a checkpoint may carry and that are dropped).
_OPTIONS = {"googlenet": {"aux_logits": False, "transform_input": True, "init_weights": True}}
_TRAINING_ONLY = ("aux1.", "aux2.")
INPUT_SIZE = (224, 224)
TOPK = 5


def build_classifier(model: str, num_classes: int = 1000) -> nn.Module:
    """torchvision's architecture with its own (seeded, so reproducible) initialisation, in eval mode."""
    torch.manual_seed(0)
    builder, _ = CLASSIFIERS[model]
    return builder(weights=None, num_classes=num_classes, **_OPTIONS.get(model, {})).eval()


def classifier(model: str, checkpoint: str | Path | None = None) -> nn.Module:
    """The model with the checkpoint's weights (random without one), sized to its class count."""
    if checkpoint is None:
        return build_classifier(model)
    state_dict = {k: v for k, v in read_state_dict(checkpoint).items() if not k.startswith(_TRAINING_ONLY)}
    last_layer = [v for v in state_dict.values() if v.ndim == 2][-1:]  # the final Linear's weight
    net = build_classifier(model, last_layer[0].shape[0] if last_layer else 1000)
    load_weights(net, state_dict, checkpoint, model)
    return net


def compile_classifier(model: str, out: Path, *, checkpoint: Checkpoint, labels: str | Path | None,
                       name: str | None, size: tuple[int, int] | None) -> Bundle:
    checkpoint = single_checkpoint(model, checkpoint)
    net = classifier(model, checkpoint)
    width, height = size or INPUT_SIZE
    spec = imagenet_input("images", width, height)
    export_onnx(net, torch.zeros(spec.shape), out / "model.onnx", input_name=spec.name, output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    classes = [m for m in net.modules() if isinstance(m, nn.Linear)][-1].out_features
    return write_compiled(
        out, model, checkpoint, name=name or model, task="classification", decoder="softmax-topk", input=spec,
        labels=resolve_labels(labels, classes, CLASSIFIERS[model][1].meta["categories"]),
        thresholds=Thresholds(), files={"model": "model.onnx"}, decoder_args={"topk": TOPK},
    )

"""torchvision semantic segmentation (FCN, DeepLabV3, LRASPP) → ONNX logits + the ``softmax`` decoder.

The exported graph returns the ``out`` head only (logits [1, C, H, W], already upsampled to the input
by the model, as torchvision does), without the training-time auxiliary head. The frame is stretched to
the input (520 × 520 by default, torchvision's evaluation size); the decoder maps the class map back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models import segmentation as tvs

from compile.checkpoint import load_weights, read_state_dict
from compile.export import Checkpoint, export_onnx, imagenet_input, resolve_labels, single_checkpoint, write_compiled
from edge.bundle import Bundle, Thresholds

# Name → (builder, weights whose offline metadata names the 21 VOC classes; nothing is downloaded).
SEGMENTERS: dict[str, tuple[Callable[..., nn.Module], WeightsEnum]] = {
    "fcn_resnet50": (tvs.fcn_resnet50, tvs.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "deeplabv3_resnet50": (tvs.deeplabv3_resnet50, tvs.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
    "deeplabv3_mobilenet_v3_large": (tvs.deeplabv3_mobilenet_v3_large,
                                     tvs.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
    "lraspp_mobilenet_v3_large": (tvs.lraspp_mobilenet_v3_large,
                                  tvs.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1),
}
_TRAINING_ONLY = ("aux_classifier.",)
INPUT_SIZE = (520, 520)


class SegmentationLogits(nn.Module):
    """The model's ``out`` logits as a plain tensor (torchvision returns a dict)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["out"]


def build_segmenter(model: str, num_classes: int = 21) -> nn.Module:
    """torchvision's architecture, seeded initialisation, no auxiliary head, in eval mode; offline."""
    torch.manual_seed(0)
    builder, _ = SEGMENTERS[model]
    return builder(weights=None, weights_backbone=None, num_classes=num_classes).eval()


def segmenter(model: str, checkpoint: str | Path | None = None) -> nn.Module:
    """The model with the checkpoint's weights (random without one), sized to its class count."""
    if checkpoint is None:
        return build_segmenter(model)
    state_dict = {k: v for k, v in read_state_dict(checkpoint).items() if not k.startswith(_TRAINING_ONLY)}
    bias = [v for k, v in state_dict.items() if k.endswith(".bias") and v.ndim == 1][-1:]  # last layer: classes
    net = build_segmenter(model, bias[0].shape[0] if bias else 21)
    load_weights(net, state_dict, checkpoint, model)
    return net


def compile_segmenter(model: str, out: Path, *, checkpoint: Checkpoint, labels: str | Path | None,
                      name: str | None, size: tuple[int, int] | None) -> Bundle:
    checkpoint = single_checkpoint(model, checkpoint)
    net = SegmentationLogits(segmenter(model, checkpoint))
    width, height = size or INPUT_SIZE
    spec = imagenet_input("images", width, height)
    example = torch.zeros(spec.shape)
    export_onnx(net, example, out / "model.onnx", input_name=spec.name, output_names=["logits"])
    with torch.no_grad():
        classes = net(example).shape[1]
    return write_compiled(
        out, model, checkpoint, name=name or model, task="segmentation", decoder="softmax", input=spec,
        labels=resolve_labels(labels, classes, SEGMENTERS[model][1].meta["categories"]),
        thresholds=Thresholds(), files={"model": "model.onnx"}, decoder_args={"background_class": 0},
    )

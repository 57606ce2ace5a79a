"""The torchvision SSD family, split the way edge runs it.

The ONNX model holds only the network (backbone and heads) and returns the raw heads; torchvision's
resize/normalise becomes the bundle's input spec, its anchors become the bundle's ``anchors`` file, and
its post-processing is done on the device by edge's ``ssd`` decoder, in NumPy, without torch.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models.detection import (
    SSD300_VGG16_Weights,
    SSDLite320_MobileNet_V3_Large_Weights,
    ssd300_vgg16,
    ssdlite320_mobilenet_v3_large,
)
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD

from compile.checkpoint import load_weights, read_state_dict
from compile.export import Checkpoint, export_onnx, resolve_labels, write_compiled
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.errors import UsageError

# Name → (builder, the COCO weights whose offline metadata names the 91 COCO classes; nothing is downloaded).
SSD_MODELS = {
    "ssdlite320_mobilenet_v3_large": (ssdlite320_mobilenet_v3_large, SSDLite320_MobileNet_V3_Large_Weights.COCO_V1),
    "ssd300_vgg16": (ssd300_vgg16, SSD300_VGG16_Weights.COCO_V1),
}
COCO_CLASSES = 91
OUTPUT_NAMES = ("bbox_regression", "cls_logits")
# The bundle's score threshold, as `edge bundle create` defaults: torchvision's own (0.001 or 0.01) is for
# measuring mAP, and would fill every frame with hundreds of boxes.
SCORE_THRESHOLD = 0.3


def compile_ssd(model: str, out: Path, *, checkpoint: Checkpoint, labels: str | Path | None, name: str | None,
                size: tuple[int, int] | None) -> Bundle:
    """Raw-head ONNX + anchors + the ``ssd`` decoder's settings: torchvision's own post-processing on the device."""
    net = ssd_model(model, checkpoint)
    width, height = input_size(net)
    if size not in (None, (width, height)):
        raise UsageError(f"--input-size: {model} is built for {width}x{height} (its anchors depend on it)")
    spec = input_spec(net)
    export_onnx(SsdHeads(net), torch.zeros(spec.shape), out / "model.onnx", input_name=spec.name,
                output_names=OUTPUT_NAMES)
    np.save(out / "anchors.npy", ssd_anchors(net))
    return write_compiled(
        out, model, checkpoint, name=name or model, task="detection", decoder="ssd", input=spec,
        labels=resolve_labels(labels, num_classes(net), coco_labels(model)),
        thresholds=Thresholds(score=SCORE_THRESHOLD, iou=net.nms_thresh, max_detections=net.detections_per_img),
        files={"model": "model.onnx", "anchors": "anchors.npy"},
        decoder_args=decoder_args(net),
    )


class SsdHeads(nn.Module):
    """The SSD network without torchvision's transform and post-processing: normalised, resized NCHW
    images in, raw ``bbox_regression`` [B, N, 4] and ``cls_logits`` [B, N, C] out."""

    def __init__(self, model: SSD):
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.head(_feature_maps(self.backbone, images))
        return outputs["bbox_regression"], outputs["cls_logits"]


def _feature_maps(backbone: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The backbone's feature maps as a list, as ``SSD.forward`` takes them (a backbone may return one map)."""
    features = backbone(images)
    if isinstance(features, torch.Tensor):
        features = OrderedDict([("0", features)])
    return list(features.values())


def build_ssd(name: str, num_classes: int = COCO_CLASSES) -> SSD:
    """torchvision's architecture with its own initialisation, in eval mode.

    Seeded, so a bundle compiled without a checkpoint is the same every time. ``weights_backbone=None``
    keeps it offline and builds the architecture torchvision loads its own COCO weights into (for SSDlite
    it also selects MobileNetV3's reduced tail), so those checkpoints fit.
    """
    torch.manual_seed(0)
    builder, _ = SSD_MODELS[name]
    return builder(weights=None, weights_backbone=None, num_classes=num_classes).eval()


def ssd_model(name: str, checkpoint: str | Path | None = None) -> SSD:
    """The model ``name`` with the checkpoint's weights (random without one), sized to its class count."""
    model = build_ssd(name)
    if checkpoint is None:
        return model
    state_dict = read_state_dict(checkpoint)
    classes = _checkpoint_classes(model, state_dict)
    if classes is not None and classes != num_classes(model):
        model = build_ssd(name, classes)
    load_weights(model, state_dict, checkpoint, f"{name} with {num_classes(model)} classes")
    return model


def _checkpoint_classes(model: SSD, state_dict: dict[str, torch.Tensor]) -> int | None:
    """Classes the checkpoint was trained for: its first classification conv has classes × anchors outputs.

    That conv's weight is the last weight of ``module_list.0`` in both SSD and SSDlite heads. ``None``
    when the checkpoint lacks it or its size does not divide; the key check then reports the mismatch.
    """
    prefix = "head.classification_head.module_list.0."
    key = [k for k in model.state_dict() if k.startswith(prefix) and k.endswith(".weight")][-1]
    anchors = model.anchor_generator.num_anchors_per_location()[0]
    outputs = state_dict[key].shape[0] if key in state_dict and state_dict[key].ndim == 4 else 0
    return outputs // anchors if outputs and outputs % anchors == 0 else None


def num_classes(model: SSD) -> int:
    """Score columns per anchor, background (class 0) included."""
    return model.head.classification_head.num_columns


def input_size(model: SSD) -> tuple[int, int]:
    """(width, height) every image is stretched to; torchvision's ``fixed_size`` is stored as (width, height)."""
    width, height = model.transform.fixed_size
    return width, height


def input_spec(model: SSD) -> InputSpec:
    """How the device feeds the model: stretched to its fixed size, RGB, normalised as torchvision does."""
    width, height = input_size(model)
    return InputSpec(
        name="images", shape=(1, 3, height, width), layout="nchw", color="rgb", dtype="float32",
        resize="stretch", pad_value=0.0,
        # torchvision normalises 0..1 images; a bundle's mean and std are in 0..255 pixel units.
        mean=tuple(m * 255 for m in model.transform.image_mean),
        std=tuple(s * 255 for s in model.transform.image_std),
    )


def decoder_args(model: SSD) -> dict:
    """The ``ssd`` decoder's settings that reproduce ``SSD.postprocess_detections``."""
    return {"box_coder_weights": list(model.box_coder.weights), "topk_candidates": model.topk_candidates,
            "background_class": 0}


def ssd_anchors(model: SSD) -> np.ndarray:
    """The model's own default boxes [N, 4] (x1, y1, x2, y2 in model-input pixels) for its fixed input size,
    in the order of the heads' N predictions."""
    width, height = input_size(model)
    images = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        anchors = model.anchor_generator(ImageList(images, [(height, width)]), _feature_maps(model.backbone, images))[0]
    return anchors.numpy().astype(np.float32)


def coco_labels(name: str) -> list[str]:
    """The 91 COCO category names torchvision trains with (index 0 ``__background__``), read offline."""
    weights: WeightsEnum = SSD_MODELS[name][1]
    return list(weights.meta["categories"])

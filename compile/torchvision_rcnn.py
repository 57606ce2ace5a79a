"""torchvision's two-stage detectors — Faster R-CNN, Keypoint R-CNN, Mask R-CNN — exported *with* their
post-processing.

The graph runs backbone, RPN and RoI heads (box NMS, per-class score threshold, keypoint heatmap
decoding, RoIAlign mask head) and returns a run-time number N of objects, people or instances: ``boxes``,
``labels``, ``scores``, then ``keypoints``/``keypoints_scores`` or ``masks`` [N, 1, 28, 28]. Left out are
torchvision's transform (normalisation becomes the bundle's input spec; the frame is letterboxed to the
input, top left, as torchvision scales it) and the final mask pasting, which edge's ``maskrcnn`` decoder
does in NumPy straight into the frame, exactly as ``paste_masks_in_image`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models import detection as tvd
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads

from compile.checkpoint import load_weights, read_state_dict
from compile.export import (
    Checkpoint,
    export_onnx,
    imagenet_input,
    resolve_labels,
    single_checkpoint,
    write_compiled,
)
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.errors import UsageError

# Name → (builder, COCO weights whose offline metadata names the classes; nothing is downloaded).
Family = dict[str, tuple[Callable[..., GeneralizedRCNN], WeightsEnum]]
FASTER_RCNN: Family = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": (tvd.fasterrcnn_mobilenet_v3_large_320_fpn,
                                              tvd.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1),
    "fasterrcnn_mobilenet_v3_large_fpn": (tvd.fasterrcnn_mobilenet_v3_large_fpn,
                                          tvd.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1),
    "fasterrcnn_resnet50_fpn": (tvd.fasterrcnn_resnet50_fpn, tvd.FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
}
MASK_RCNN: Family = {
    "maskrcnn_resnet50_fpn": (tvd.maskrcnn_resnet50_fpn, tvd.MaskRCNN_ResNet50_FPN_Weights.COCO_V1),
    "maskrcnn_resnet50_fpn_v2": (tvd.maskrcnn_resnet50_fpn_v2, tvd.MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
}
KEYPOINT_RCNN: Family = {
    "keypointrcnn_resnet50_fpn": (tvd.keypointrcnn_resnet50_fpn, tvd.KeypointRCNN_ResNet50_FPN_Weights.COCO_V1),
}
FAMILIES: Family = {**FASTER_RCNN, **MASK_RCNN, **KEYPOINT_RCNN}


@dataclass(frozen=True)
class Kind:
    """What one family's bundle is: its task, the runtime decoder, and the outputs that decoder reads."""

    task: str
    decoder: str
    outputs: tuple[str, ...]


BOX_OUTPUTS = ("boxes", "labels", "scores")
KINDS = {**{m: Kind("detection", "fasterrcnn", BOX_OUTPUTS) for m in FASTER_RCNN},
         **{m: Kind("segmentation", "maskrcnn", (*BOX_OUTPUTS, "masks")) for m in MASK_RCNN},
         **{m: Kind("pose", "keypointrcnn", (*BOX_OUTPUTS, "keypoints", "keypoints_scores")) for m in KEYPOINT_RCNN}}
INPUT_SIZE = (512, 512)
INPUT_SIZES = {"fasterrcnn_mobilenet_v3_large_320_fpn": (320, 320)}  # the size the model was trained at
SCORE_THRESHOLD = 0.5  # the bundle's (shown) threshold; the graph keeps torchvision's 0.05 for candidates
PAD_VALUE = 114.5  # the ImageNet mean pixel, near enough: torchvision pads normalised images with zeros


class RcnnHeads(nn.Module):
    """The detector on a normalised image batch of one, without torchvision's transform: one frame in,
    its detections out as a tuple in ``names`` order (boxes in input pixels, masks before pasting)."""

    def __init__(self, model: GeneralizedRCNN, names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = ImageList(images, [(images.shape[-2], images.shape[-1])])
        features = self.model.backbone(images)
        proposals, _ = self.model.rpn(batch, features)
        detections, _ = self.model.roi_heads(features, proposals, batch.image_sizes)
        return tuple(detections[0][name] for name in self.names)


def trace_with_rpn(heads: RcnnHeads, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The forward Torch-Pruning traces: the detections plus the RPN head's raw outputs. torchvision
    detaches the RPN's proposals, so in the plain forward no gradient path reaches the RPN head and the
    dependency graph does not see it: pruning would thin the FPN maps it reads and leave its convolution
    expecting the old width. As outputs, its objectness and box convs also keep their width (one per anchor).

    The detected boxes the mask and keypoint heads pool from are detached here as the proposals are: they
    are coordinates, not channels. Left attached, RoIAlign (an op Torch-Pruning does not know, so treats as
    element-wise) couples every FPN channel group with the box regression's classes × 4 outputs, and the
    index expansion through its reshapes alone outgrows 24 GB."""
    with _boxes_detached(heads.model.roi_heads):
        objectness, deltas = heads.model.rpn.head(list(heads.model.backbone(images).values()))
        return (*heads(images), *chain(objectness, deltas))


@contextmanager
def _boxes_detached(roi_heads: RoIHeads) -> Iterator[None]:
    """The mask and keypoint RoI pools (where the model has them) see detached boxes while inside."""
    def detach_boxes(_, args):
        features, boxes, *rest = args
        return (features, [b.detach() for b in boxes], *rest)

    pools = [p for p in (roi_heads.mask_roi_pool, roi_heads.keypoint_roi_pool) if p is not None]
    handles = [pool.register_forward_pre_hook(detach_boxes) for pool in pools]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def build_rcnn(model: str, size: tuple[int, int] = INPUT_SIZE, **options) -> GeneralizedRCNN:
    """torchvision's architecture, seeded initialisation, offline, in eval mode; its transform set to the
    bundle's input size so that running the whole torchvision model on an input-sized image (as the tests
    do) resizes nothing. ``options`` go to the builder (e.g. ``num_classes``, ``box_score_thresh``)."""
    torch.manual_seed(0)
    builder, _ = FAMILIES[model]
    return builder(weights=None, weights_backbone=None, min_size=min(size), max_size=max(size), **options).eval()


def rcnn_model(model: str, checkpoint: str | Path | None, size: tuple[int, int]) -> GeneralizedRCNN:
    """The model with the checkpoint's weights (random without one), sized to its class count."""
    if checkpoint is None:
        return build_rcnn(model, size)
    state_dict = read_state_dict(checkpoint)
    scores = state_dict.get("roi_heads.box_predictor.cls_score.weight")
    options = {"num_classes": scores.shape[0]} if scores is not None else {}
    keypoints = state_dict.get("roi_heads.keypoint_predictor.kps_score_lowres.weight")
    if keypoints is not None:
        options["num_keypoints"] = keypoints.shape[1]
    net = build_rcnn(model, size, **options)
    load_weights(net, state_dict, checkpoint, model)
    return net


def input_size(model: str, size: tuple[int, int] | None) -> tuple[int, int]:
    width, height = size or INPUT_SIZES.get(model, INPUT_SIZE)
    if width % 32 or height % 32:
        raise UsageError(f"--input-size: {width}x{height}; the FPN backbone needs multiples of 32")
    return width, height


def input_spec(width: int, height: int) -> InputSpec:
    return imagenet_input("images", width, height, resize="letterbox", pad_value=PAD_VALUE)


def thresholds(net: GeneralizedRCNN) -> Thresholds:
    return Thresholds(score=SCORE_THRESHOLD, iou=net.roi_heads.nms_thresh,
                      max_detections=net.roi_heads.detections_per_img)


def labels_of(model: str, net: GeneralizedRCNN, labels: str | Path | None = None) -> list[str]:
    classes = net.roi_heads.box_predictor.cls_score.out_features
    return resolve_labels(labels, classes, FAMILIES[model][1].meta["categories"])


def compile_rcnn(model: str, out: Path, *, checkpoint: Checkpoint, labels: str | Path | None, name: str | None,
                 size: tuple[int, int] | None) -> Bundle:
    checkpoint = single_checkpoint(model, checkpoint)
    width, height = input_size(model, size)
    net, kind, spec = rcnn_model(model, checkpoint, (width, height)), KINDS[model], input_spec(width, height)
    export_onnx(RcnnHeads(net, kind.outputs), torch.rand(spec.shape), out / "model.onnx", input_name=spec.name,
                output_names=kind.outputs)
    return write_compiled(
        out, model, checkpoint, name=name or model, task=kind.task, decoder=kind.decoder, input=spec,
        labels=labels_of(model, net, labels), thresholds=thresholds(net), files={"model": "model.onnx"},
    )

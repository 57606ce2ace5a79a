"""torchvision's Faster R-CNN, Keypoint R-CNN and Mask R-CNN, exported with their own post-processing
(``edge compile``).

Outputs have a run-time count N: ``boxes`` [N, 4] (model-input pixels), ``labels`` [N], ``scores`` [N]
(already NMS-ed and cut to ``detections_per_img`` in the graph) — all that Faster R-CNN gives — then
``keypoints`` [N, K, 3] with ``keypoints_scores`` [N, K], or ``masks`` [N, 1, M, M]: per-box mask
probabilities from the model's RoIAlign mask head, before pasting. Pasting is done here, straight into the
frame, exactly as ``torchvision.models.detection.roi_heads.paste_masks_in_image`` does it (pad by one cell,
widen the box to match, bilinear resize to the integer box, clip), so no frame-sized mask is ever made per
instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.decoders.base import Decoder
from edge.geometry import Transform, box_centres, boxes_from_centres
from edge.results import Detections, MaskPatches, Poses


class _RcnnDecoder(Decoder):
    batched = False  # outputs are [N, ...] detections of one image
    extra_outputs: tuple[str, ...] = ()

    def __init__(self, bundle, outputs):
        super().__init__(bundle, outputs)
        missing = [n for n in ("boxes", "labels", "scores", *self.extra_outputs) if n not in self.outputs]
        if missing:
            raise self.bad(f"the model has no output '{missing[0]}' (outputs: {', '.join(self.outputs)}); "
                           f"export it with edge compile")

    def kept(self, outputs: Mapping[str, np.ndarray], transform: Transform):
        """Indices above the score threshold and their boxes in frame pixels."""
        keep = np.flatnonzero(outputs["scores"] >= self.thresholds.score)[:self.thresholds.max_detections]
        return keep, transform.boxes_to_source(outputs["boxes"][keep].astype(np.float32))


class FasterRcnnDecoder(_RcnnDecoder, key="fasterrcnn", task="detection"):
    """Boxes, scores and labels, as the graph's post-processing left them."""

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        keep, boxes = self.kept(outputs, transform)
        return Detections(boxes, outputs["scores"][keep].astype(np.float32), outputs["labels"][keep].astype(np.int64))


class KeypointRcnnDecoder(_RcnnDecoder, key="keypointrcnn", task="pose"):
    """People with K keypoints. torchvision's keypoint scores are heatmap logits; the event's keypoint
    score is their sigmoid, so that 0.5 means the same as for other pose models' thresholds."""

    extra_outputs = ("keypoints", "keypoints_scores")

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Poses:
        keep, boxes = self.kept(outputs, transform)
        keypoints = outputs["keypoints"][keep].astype(np.float32)
        keypoints[..., 2] = 1.0 / (1.0 + np.exp(-outputs["keypoints_scores"][keep]))
        return Poses(transform.points_to_source(keypoints), outputs["scores"][keep].astype(np.float32), boxes)


@dataclass(frozen=True)
class MaskArgs:
    mask_threshold: float = field(default=0.5, metadata={"minimum": 0, "maximum": 1})


class MaskRcnnDecoder(_RcnnDecoder, key="maskrcnn", task="segmentation", args=MaskArgs):
    """Instances: detections whose masks are pasted into the frame (mask probability > ``mask_threshold``,
    default 0.5 as torchvision's references use)."""

    extra_outputs = ("masks",)

    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Detections:
        keep, boxes = self.kept(outputs, transform)
        masks = paste_masks(outputs["masks"][keep, 0], boxes, transform.source_size, self.args.mask_threshold)
        return Detections(boxes, outputs["scores"][keep].astype(np.float32),
                          outputs["labels"][keep].astype(np.int64), masks=masks)


def paste_masks(masks: np.ndarray, boxes: np.ndarray, frame_size: tuple[int, int],
                threshold: float = 0.5) -> MaskPatches:
    """``[N, M, M]`` box-relative mask probabilities → binary masks over their frame boxes (torchvision's
    ``paste_masks_in_image`` with padding 1, then ``> threshold``). One resize per instance."""
    width, height = frame_size
    size = masks.shape[-1]
    padded = np.pad(masks.astype(np.float32), ((0, 0), (1, 1), (1, 1)))
    scale = np.float32((size + 2) / size)
    halves = (boxes[:, 2:] - boxes[:, :2]) * np.float32(0.5) * scale
    corners = boxes_from_centres(box_centres(boxes), halves).astype(np.int64)  # truncates, as torch does
    origins = np.zeros((len(boxes), 2), np.int64)
    patches = []
    for i, (x0, y0, x1, y1) in enumerate(corners.tolist()):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = max(min(x1 + 1, width), left), max(min(y1 + 1, height), top)
        resized = cv2.resize(padded[i], (w, h), interpolation=cv2.INTER_LINEAR)
        patches.append(resized[top - y0:bottom - y0, left - x0:right - x0] > threshold)
        origins[i] = left, top
    return MaskPatches(origins, patches, (width, height))

"""MTCNN (Zhang et al., 2016): a three-network face cascade with five landmarks, run without torch.

One bundle holds the three networks (files ``pnet``, ``rnet``, ``onet``; ``edge compile --model mtcnn``).
Per frame:

1. P-Net, fully convolutional, slides over an image pyramid (scales ``12 / min_face * factor^i`` down to
   12 px); every output cell with face probability ≥ ``stage_thresholds[0]`` is a 12 × 12 window at
   stride 2. NMS 0.5 per level, 0.7 over all, box regression, boxes made square.
2. R-Net on 24 × 24 crops of those boxes (batched): probability ≥ ``stage_thresholds[1]``, NMS 0.7,
   regression, square.
3. O-Net on 48 × 48 crops: probability ≥ ``thresholds.score``, five landmarks (relative to the crop
   box), regression, then NMS with intersection over the *smaller* box (``thresholds.iou``).

Each pyramid level is a slot of the one P-Net backend (its input shape planned once per frame size) and
is filled by a :class:`Preprocessor` straight from the frame; crops are one ``warpAffine`` each into
R-Net's and O-Net's batch buffers. The input spec gives colour order and normalisation, and its
width × height caps the working size: larger frames are searched at a reduced scale, which bounds the work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from edge.backends.base import Backend
from edge.decoders.cascade import Cascade
from edge.decoders.nms import nms
from edge.geometry import box_centres, boxes_from_centres
from edge.preprocess import Preprocessor
from edge.results import Detections

STRIDE, CELL = 2, 12  # P-Net's output cell: a 12 × 12 window every 2 pixels


@dataclass(frozen=True)
class MtcnnArgs:
    """``min_face``: the smallest face searched for, in working pixels; ``factor``: the pyramid's scale step;
    ``stage_thresholds``: P-Net's and R-Net's face probability; ``batch``: crops per R-/O-Net call."""

    min_face: float = field(default=20.0, metadata={"exclusiveMinimum": 0})
    factor: float = field(default=0.709, metadata={"exclusiveMinimum": 0, "exclusiveMaximum": 1})
    stage_thresholds: tuple[float, float] = (0.6, 0.7)
    batch: int = field(default=32, metadata={"minimum": 1})


class MtcnnCascade(Cascade, key="mtcnn", task="detection", roles=("pnet", "rnet", "onet"), args=MtcnnArgs):
    def __init__(self, bundle, open_backend):
        super().__init__(bundle, open_backend)
        spec = bundle.input
        batch = self.args.batch
        self.pnet = self.open("pnet", {spec.name: (1, 3, CELL, CELL)})
        self.rnet = self.open("rnet", {spec.name: (batch, 3, 24, 24)})
        self.onet = self.open("onet", {spec.name: (batch, 3, 48, 48)})
        for backend in (self.rnet, self.onet):
            if backend.inputs[0].shape[0] is not None:
                raise self.bad(f"{backend.model_path.name} has a fixed batch {backend.inputs[0].shape[0]}; "
                               f"MTCNN's R-Net and O-Net need a dynamic batch")
        self.crops = {backend: Preprocessor(replace(spec, shape=backend.slots[0].inputs[spec.name].shape,
                                                    resize="stretch"))
                      for backend in (self.rnet, self.onet)}
        self._levels: list[tuple[Preprocessor, object]] = []
        self._levels_for: tuple[int, int] | None = None

    def _plan_levels(self, width: int, height: int) -> None:
        """One (preprocessor, P-Net slot) per pyramid scale, for this frame size."""
        spec = self.bundle.input
        scale = min(1.0, spec.width / width, spec.height / height) * CELL / self.args.min_face
        self._levels = []
        while min(width, height) * scale >= CELL:
            shape = (1, 3, int(height * scale + 1), int(width * scale + 1))
            slot = self.pnet.add_slot({spec.name: shape})
            resize = Preprocessor(replace(spec, shape=shape, resize="stretch"), interpolation=cv2.INTER_AREA)
            self._levels.append((resize, slot))
            scale *= self.args.factor
        self._levels_for = (width, height)

    def __call__(self, image: np.ndarray) -> Detections:
        start = time.perf_counter()
        self.timings.update(preprocess=0.0, infer=0.0)
        try:
            return self._detect(image)
        finally:
            self.timings["postprocess"] = (time.perf_counter() - start - self.timings["preprocess"]
                                           - self.timings["infer"])

    def _detect(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        if self._levels_for != (width, height):
            self._plan_levels(width, height)
        boxes = self._proposals(image)
        if len(boxes):
            outputs, boxes = self._refine(self.rnet, image, boxes, self.args.stage_thresholds[1])
            boxes = _square(_regress(boxes, outputs["bbox_reg"]))
        if len(boxes):
            outputs, boxes = self._refine(self.onet, image, boxes, self.thresholds.score, final=True)
        if not len(boxes):
            return Detections.empty()
        sizes = (boxes[:, 2:] - boxes[:, :2])[:, None]
        points = outputs["landmarks"].reshape(-1, 2, 5).transpose(0, 2, 1) * sizes + boxes[:, None, :2]
        scores = outputs["face_prob"][:, 1]
        boxes = _regress(boxes, outputs["bbox_reg"])
        keep = nms(boxes, scores, self.thresholds.iou, None, self.thresholds.max_detections, overlap="min")
        keypoints = np.concatenate([points[keep], np.repeat(scores[keep, None, None], 5, axis=1)], axis=2)
        boxes = np.clip(boxes[keep], 0, [width, height, width, height]).astype(np.float32)
        return Detections(boxes, scores[keep].astype(np.float32), np.zeros(len(keep), np.int64),
                          keypoints.astype(np.float32))

    def _proposals(self, image: np.ndarray) -> np.ndarray:
        """Stage 1: P-Net over the pyramid → square candidate boxes in frame pixels."""
        name = self.bundle.input.name
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for preprocess, slot in self._levels:
            t = time.perf_counter()
            transform = preprocess(image, slot.inputs[name])
            t1 = time.perf_counter()
            outputs = self.pnet.run(slot)
            self.timings["preprocess"] += t1 - t
            self.timings["infer"] += time.perf_counter() - t1
            probs = outputs["face_prob"][0, 1]
            ys, xs = np.nonzero(probs >= self.args.stage_thresholds[0])
            if len(ys) == 0:
                continue
            corners = np.stack([xs, ys], axis=1).astype(np.float32) * STRIDE
            windows = np.concatenate([corners, corners + CELL], axis=1).reshape(-1, 2, 2)
            boxes = transform.points_to_source(windows).reshape(-1, 4)  # not clipped: regression needs the window
            scores = probs[ys, xs]
            keep = nms(boxes, scores, 0.5)
            found.append((boxes[keep], scores[keep], outputs["bbox_reg"][0][:, ys[keep], xs[keep]].T))
        if not found:
            return np.zeros((0, 4), np.float32)
        boxes, scores, regression = (np.concatenate(parts) for parts in zip(*found))
        keep = nms(boxes, scores, 0.7)
        return _square(_regress(boxes[keep], regression[keep]))

    def _refine(self, backend: Backend, image: np.ndarray, boxes: np.ndarray, threshold: float,
                final: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Stages 2 and 3: the network on a crop per box, in batches; the outputs and boxes that pass
        ``threshold`` (then NMS 0.7, except for the last stage, whose NMS follows its regression)."""
        slot, preprocess = backend.slots[0], self.crops[backend]
        batch = slot.inputs[self.bundle.input.name]
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, len(boxes), len(batch)):
            chunk = boxes[start:start + len(batch)]
            t = time.perf_counter()
            for i, box in enumerate(chunk):
                preprocess.crop(image, box, batch[i])
            t1 = time.perf_counter()
            parts.append(backend.run_first(slot, len(chunk)))
            self.timings["preprocess"] += t1 - t
            self.timings["infer"] += time.perf_counter() - t1
        outputs = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        passed = np.flatnonzero(outputs["face_prob"][:, 1] >= threshold)
        if not final and len(passed):
            passed = passed[nms(boxes[passed], outputs["face_prob"][passed, 1], 0.7)]
        return {name: values[passed] for name, values in outputs.items()}, boxes[passed]


def _regress(boxes: np.ndarray, regression: np.ndarray) -> np.ndarray:
    """Each corner moves by its regression value times the box's width or height."""
    sizes = boxes[:, 2:] - boxes[:, :2]
    return boxes + regression * np.concatenate([sizes, sizes], axis=1)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes widened to squares about their centres (the next network takes square crops)."""
    half = (boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True) * 0.5
    return boxes_from_centres(box_centres(boxes), half)

"""How closely a changed model (INT8, pruned, distilled) agrees with the original, judged as a user would.

The original model's outputs stand in for ground truth, so no labels are needed; every score comes with a
bootstrap 95 % interval over frames (frames, not pixels or boxes, are the independent draws of footage):

- detection: COCO mAP@0.5, class-aware and class-agnostic (:mod:`calibration.coco_map`). The score is the
  class-aware one only where every class the reference found has at least :data:`MIN_BOXES_PER_CLASS` boxes:
  with a handful of buses, one bus called a truck moves the class-aware mean by whole percent. Class-agnostic
  counts each object once: a detector whose NMS runs per class can name one object twice (see :func:`_agnostic`).
- segmentation: frequency-weighted IoU over the classes that cover at least :data:`MIN_CLASS_SHARE` of the
  reference's pixels, and pixel agreement. Mean IoU is no agreement metric: it weighs a class of a few
  thousand stray pixels like the scene's background, and fp32 scores about 0.56 against itself with invisible
  noise added.
- pose: mean OKS of the reference's people; classification: top-1 agreement.

A threshold on any of these means something only relative to the metric's *noise floor*: the score of fp32
against fp32 on the same frames as a camera would perturb them (:func:`perturb`: sensor noise and a JPEG
re-encode). The INT8 gate and the pruning/distillation report both use this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.coco_map import match, mean_ap
from edge.decoders.nms import nms

# COCO keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles), from cocoapi.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10
MIN_BOXES_PER_CLASS = 20
MIN_CLASS_SHARE = 0.01
SAME_OBJECT_IOU = 0.8  # class-agnostic: boxes of different classes overlapping more than this are one object
RESAMPLES = 1000  # bootstrap resamples of the frames
SENSOR_NOISE = 1.5  # grey levels (standard deviation) of the noise a camera adds frame to frame
JPEG_QUALITY = 90  # and the re-encode a camera or recorder applies
# Each task's gated metric, by the name reports print.
METRICS = {"detection": "mAP@0.5", "segmentation": "fwIoU", "pose": "mean OKS", "classification": "top-1"}


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections: boxes [N,4] x1,y1,x2,y2, scores [N], class ids [N]."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@dataclass(frozen=True)
class Agreement:
    """A score in 0..1 (higher: closer), its bootstrap 95 % interval over frames, and what else was measured.

    ``metric`` names the score (for detection: which of the class-aware and class-agnostic mAP it is)."""

    metric: str
    score: float
    low: float
    high: float
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.metric} {self.score:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], frames: int, resamples: int = RESAMPLES,
              seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high): ``statistic`` maps frame weights ``[B, F]`` (a frame drawn w times weighs w) to ``[B]``
    scores; the value has unit weights, the interval is the 2.5–97.5 percentile of resampled frames."""
    value = float(statistic(np.ones((1, frames)))[0])
    if frames < 2:
        return value, value, value
    draws = np.random.default_rng(seed).integers(0, frames, (resamples, frames))
    weights = np.zeros((resamples, frames))
    np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
    scores = statistic(weights)
    low, high = np.nanpercentile(scores, [2.5, 97.5]) if np.isfinite(scores).any() else (value, value)
    return value, float(low), float(high)


def perturb(image: np.ndarray, rng: np.random.Generator, sigma: float = SENSOR_NOISE,
            jpeg_quality: int = JPEG_QUALITY) -> np.ndarray:
    """The BGR frame as a camera could as well have delivered it: Gaussian sensor noise, then a JPEG re-encode."""
    noisy = np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ValueError("JPEG encoding of a frame failed")
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).reshape(image.shape)


# ---- detection


def _agnostic(frames: Sequence[FrameDetections]) -> list[FrameDetections]:
    """Every box one class, and one box per object: of boxes overlapping more than :data:`SAME_OBJECT_IOU`, the
    highest-scoring stays.

    NMS per class lets one object through under two names: YOLOX-nano's neighbouring grid points call one vehicle
    "car" and "truck" (or "bus"), and 60 of its 414 boxes on the highway footage are in such pairs, every pair at
    IoU 0.86-0.98. Counted as two objects, the pair asks a candidate to repeat the class flip that a class-agnostic
    score exists to ignore, and it is noise even for the model itself (fp32 against itself on camera-perturbed
    frames: 0.985 with the pairs, 0.990 without). Two different objects seldom overlap that much; where they do,
    the lower-scoring one goes uncounted on both sides. Same-class boxes that close are gone already (NMS)."""
    out = []
    for f in frames:
        keep = nms(f.boxes, f.scores, SAME_OBJECT_IOU)
        out.append(FrameDetections(f.boxes[keep], f.scores[keep], np.zeros(len(keep), np.int64)))
    return out


def detection_map50(reference: Sequence[FrameDetections], candidate: Sequence[FrameDetections],
                    class_agnostic: bool = False) -> float:
    """COCO mAP at IoU 0.5 with the reference as ground truth (class-agnostic: every box one class, each object
    once: :func:`_agnostic`).

    If the reference sees nothing anywhere, the score is 1.0 when the candidate also sees nothing, else 0.0."""
    if class_agnostic:
        reference, candidate = _agnostic(reference), _agnostic(candidate)
    if not any(len(r.scores) for r in reference):
        return 0.0 if any(len(c.scores) for c in candidate) else 1.0
    return float(mean_ap(match(reference, candidate), np.ones((1, len(reference))))[0])


def detection_agreement(reference: Sequence[FrameDetections], candidate: Sequence[FrameDetections],
                        min_boxes: int = MIN_BOXES_PER_CLASS) -> Agreement:
    """Class-aware and class-agnostic mAP@0.5; the score is class-aware only where every class has ``min_boxes``."""
    if not any(len(r.scores) for r in reference):
        empty = detection_map50(reference, candidate)
        return Agreement("class-agnostic mAP@0.5", empty, empty, empty, {"boxes_per_class": {}})
    aware, agnostic = match(reference, candidate), match(_agnostic(reference), _agnostic(candidate))
    classes, counts = np.unique(aware.truth_classes, return_counts=True)
    per_class = {int(c): int(n) for c, n in zip(classes, counts)}
    gate_aware = counts.min() >= min_boxes
    results = {name: bootstrap(lambda w, m=m: mean_ap(m, w), len(reference))
               for name, m in (("class-aware", aware), ("class-agnostic", agnostic))}
    name = "class-aware" if gate_aware else "class-agnostic"
    details = {f"{n} mAP@0.5": list(v) for n, v in results.items()}
    return Agreement(f"{name} mAP@0.5", *results[name], {**details, "boxes_per_class": per_class})


# ---- segmentation


def _confusions(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame confusion matrices ``[F, K, K]`` over the K ids present (reference rows), and those ids."""
    ids = np.unique(np.concatenate([np.unique(m) for m in (*reference, *candidate)]))
    k = len(ids)
    out = np.empty((len(reference), k, k), np.int64)
    for frame, (ref, cand) in enumerate(zip(reference, candidate)):
        pair = np.searchsorted(ids, ref.ravel()) * k + np.searchsorted(ids, cand.ravel())
        out[frame] = np.bincount(pair, minlength=k * k).reshape(k, k)
    return out, ids


def _fw_iou(confusion: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Frequency-weighted IoU of confusion matrices ``[B, K, K]`` over the ``kept`` classes."""
    truth, found = confusion.sum(2), confusion.sum(1)
    hit = np.diagonal(confusion, axis1=1, axis2=2)
    iou = hit / np.maximum(truth + found - hit, 1)
    return (truth * iou)[:, kept].sum(1) / np.maximum(truth[:, kept].sum(1), 1)


def segmentation_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray],
                           min_share: float = MIN_CLASS_SHARE) -> Agreement:
    """Frequency-weighted IoU (classes under ``min_share`` of the reference's pixels ignored) and pixel
    agreement of ``[H, W]`` class maps."""
    confusion, ids = _confusions(reference, candidate)
    flat = confusion.reshape(len(confusion), -1).astype(np.float64)
    k = len(ids)
    share = confusion.sum((0, 2)) / max(confusion.sum(), 1)
    kept = share >= min_share

    def fw_iou(weights):
        return _fw_iou((weights @ flat).reshape(-1, k, k), kept)

    def pixels(weights):
        total = weights @ flat
        return total[:, ::k + 1].sum(1) / np.maximum(total.sum(1), 1)

    agree = bootstrap(pixels, len(reference))
    kept_ids = {int(i): round(float(s), 4) for i, s in zip(ids[kept], share[kept])}
    return Agreement("fwIoU", *bootstrap(fw_iou, len(reference)),
                     {"pixel agreement": list(agree), "classes (share of reference pixels)": kept_ids})


def miou_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], classes: int,
                   ignore: int | None = None, metric: str = "mIoU") -> Agreement:
    """Mean IoU over the classes present in either map (``[H, W]`` integer ids below ``classes``), as labelled
    benchmarks report it; pixels whose reference is ``ignore`` (VOC's 255 borders) or not below ``classes`` do
    not count."""
    per_frame = np.zeros((len(reference), classes * classes))
    for frame, (ref, cand) in enumerate(zip(reference, candidate)):
        keep = (ref < classes) & ((ref != ignore) if ignore is not None else True)
        pairs = ref[keep].astype(np.int64) * classes + np.minimum(cand[keep].astype(np.int64), classes - 1)
        per_frame[frame] = np.bincount(pairs, minlength=classes * classes)

    def miou(weights: np.ndarray) -> np.ndarray:
        confusion = (weights @ per_frame).reshape(-1, classes, classes)
        hit = np.diagonal(confusion, axis1=1, axis2=2)
        union = confusion.sum(1) + confusion.sum(2) - hit
        present = union > 0
        return np.where(present, hit / np.maximum(union, 1), 0).sum(1) / np.maximum(present.sum(1), 1)

    if not len(reference):
        return Agreement(metric, 1.0, 1.0, 1.0)
    return Agreement(metric, *bootstrap(miou, len(reference)))


def segmentation_miou(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], classes: int,
                      ignore: int | None = None) -> float:
    """:func:`miou_agreement`'s score alone."""
    return miou_agreement(reference, candidate, classes, ignore).score


# ---- pose and classification


def object_keypoint_similarity(reference: np.ndarray, candidate: np.ndarray, area: float,
                               min_visibility: float = 0.3) -> float:
    """OKS of one person: ``[K, 3]`` (x, y, score) arrays; keypoints the reference sees (score above
    ``min_visibility``) count; ``area`` is the person's area in pixels (COCO uses the segment area)."""
    visible = reference[:, 2] > min_visibility
    if not visible.any():
        return 1.0
    sigmas = COCO_SIGMAS if len(reference) == len(COCO_SIGMAS) else np.full(len(reference), COCO_SIGMAS.mean())
    squared = ((reference[:, :2] - candidate[:, :2]) ** 2).sum(axis=1)
    variance = (2 * sigmas) ** 2 * (area + np.spacing(1)) * 2
    return float(np.exp(-squared / variance)[visible].mean())


def _person_oks(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the summed OKS of the reference's people (each matched to the candidate's best) and their count."""
    sums, counts = np.zeros(len(reference)), np.zeros(len(reference))
    for frame, (ref_people, cand_people) in enumerate(zip(reference, candidate)):
        for person in ref_people:
            points = person[person[:, 2] > 0.3, :2]
            extent = points.max(axis=0) - points.min(axis=0) if len(points) else np.zeros(2)
            area = max(float(extent[0] * extent[1]), 1.0)
            sums[frame] += max((object_keypoint_similarity(person, other, area) for other in cand_people),
                               default=0.0)
            counts[frame] += 1
    return sums, counts


def pose_mean_oks(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    """Mean OKS over the reference's people (``[N, K, 3]`` per frame); a person the candidate misses scores 0."""
    sums, counts = _person_oks(reference, candidate)
    return float(sums.sum() / counts.sum()) if counts.sum() else 1.0


def pose_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Agreement:
    sums, counts = _person_oks(reference, candidate)
    if not counts.sum():
        return Agreement(METRICS["pose"], 1.0, 1.0, 1.0, {"people": 0})
    value = bootstrap(lambda w: (w @ sums) / np.maximum(w @ counts, np.spacing(1)), len(reference))
    return Agreement(METRICS["pose"], *value, {"people": int(counts.sum())})


def top1_agreement(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """Fraction of frames on which both models name the same top class."""
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    return float((reference == candidate).mean()) if len(reference) else 1.0


def classification_agreement(reference: Sequence[int], candidate: Sequence[int]) -> Agreement:
    same = (np.asarray(reference) == np.asarray(candidate)).astype(np.float64)
    if not len(same):
        return Agreement(METRICS["classification"], 1.0, 1.0, 1.0)
    return Agreement(METRICS["classification"], *bootstrap(lambda w: (w @ same) / w.sum(1), len(same)))


# ---- by task


def agreement(task: str, reference: Sequence, candidate: Sequence) -> Agreement:
    """The task's agreement of ``candidate`` with ``reference`` (per-frame results, as :mod:`calibration.measure`
    gives them), with its interval and the other metrics measured."""
    if task == "detection":
        return detection_agreement(reference, candidate)
    if task == "segmentation":
        return segmentation_agreement(reference, candidate)
    if task == "pose":
        return pose_agreement(reference, candidate)
    return classification_agreement(reference, candidate)


def task_agreement(task: str, reference: Sequence, candidate: Sequence, classes: int = 0) -> float:
    """The task's agreement score alone (``classes`` is no longer needed: maps are compared on the ids present)."""
    return agreement(task, reference, candidate).score

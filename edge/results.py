"""What decoders produce: plain arrays in source-frame pixels, turned into event JSON at the sink.

One result type per task (detections, segmentation, poses, classification) plus per-box classification.
``to_event(label)`` gives the contract's RESULT; ``maps()`` gives the per-frame images ``--save-masks``
writes (class ids, instance ids, panoptic ids), keyed by kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.index_maps import count_values

Label = Callable[[int], str]


def _round(values: np.ndarray, digits: int) -> list:
    return np.round(values.astype(np.float64), digits).tolist()


class Result:
    """What every result offers besides its arrays."""

    def to_event(self, label: Label) -> dict[str, Any]:
        """The contract's RESULT for this bundle; ``label`` names a class id of the bundle."""
        raise NotImplementedError

    def maps(self) -> dict[str, np.ndarray]:
        """Per-frame images worth saving (``--save-masks``), by kind; most results have none."""
        return {}


@dataclass
class MaskPatches:
    """Instance masks, each kept only over its box (a frame-sized mask per instance would cost megabytes):
    mask i covers frame rows ``y0 : y0 + h`` and columns ``x0 : x0 + w`` with ``(x0, y0) = origins[i]``."""

    origins: np.ndarray  # [N, 2] int64 x0, y0
    patches: list[np.ndarray]  # N bool [h, w]
    frame_size: tuple[int, int]  # width, height

    _window: tuple[bytes, int, int, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def areas(self) -> np.ndarray:
        return np.array([int(np.count_nonzero(p)) for p in self.patches], np.int64)

    def visible_areas(self, scores: np.ndarray) -> np.ndarray:
        """[N] pixels where instance i is the one on top (see :meth:`id_map`)."""
        _, _, ids = self._ids_in_window(scores)
        return count_values(ids, len(self.patches) + 1)[1:]

    def id_map(self, scores: np.ndarray) -> np.ndarray:
        """[H, W] uint16: 0 where no instance, i + 1 where instance i is; where instances overlap the
        higher score wins (painted last)."""
        x0, y0, ids = self._ids_in_window(scores)
        frame = np.zeros(self.frame_size[::-1], np.uint16)
        frame[y0:y0 + ids.shape[0], x0:x0 + ids.shape[1]] = ids
        return frame

    def _ids_in_window(self, scores: np.ndarray) -> tuple[int, int, np.ndarray]:
        """The id map over the rectangle the patches span only (x0, y0, ids), built once per result: the
        event's pixel counts and the saved map both read it."""
        key = np.ascontiguousarray(scores).tobytes()
        if self._window is None or self._window[0] != key:
            x0 = y0 = x1 = y1 = 0
            if self.patches:
                sizes = np.array([p.shape[::-1] for p in self.patches], np.int64)
                (x0, y0), (x1, y1) = self.origins.min(0).tolist(), (self.origins + sizes).max(0).tolist()
            ids = np.zeros((y1 - y0, x1 - x0), np.uint16)
            for i in np.argsort(scores, kind="stable").tolist():
                (x, y), patch = (self.origins[i] - (x0, y0)).tolist(), self.patches[i]
                region = ids[y:y + patch.shape[0], x:x + patch.shape[1]]
                region[patch] = i + 1
            self._window = key, x0, y0, ids
        return self._window[1:]


@dataclass
class Detections(Result):
    """N detections as parallel arrays; ``keypoints`` is ``[N, K, 3]`` (x, y, score) for detectors with landmarks,
    ``masks`` the instance masks of an instance-segmentation model."""

    boxes: np.ndarray  # [N, 4] float32 x1, y1, x2, y2
    scores: np.ndarray  # [N] float32
    class_ids: np.ndarray  # [N] int64
    keypoints: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    masks: MaskPatches | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, keep: np.ndarray) -> Detections:
        """The detections at indices ``keep`` (landmarks and tracks kept along; masks are not)."""
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep],
                          None if self.keypoints is None else self.keypoints[keep],
                          None if self.track_ids is None else self.track_ids[keep])

    def to_event(self, label: Label) -> dict[str, Any]:
        """The contract's detection RESULT: boxes to 0.1 px, scores to 1e-4. With masks, each detection adds
        ``mask_area`` (pixels) and the result adds ``class_fractions`` (a segmentation RESULT) of their union."""
        class_ids = self.class_ids.tolist()
        items = [{"label": label(c), "class_id": c, "score": s, "box": b}
                 for c, s, b in zip(class_ids, _round(self.scores, 4), _round(self.boxes, 1))]
        if self.keypoints is not None:
            for item, points in zip(items, _round(self.keypoints, 2)):
                item["keypoints"] = points
        if self.track_ids is not None:
            for item, track in zip(items, self.track_ids.tolist()):
                item["track_id"] = track
        event: dict[str, Any] = {"detections": items}
        if self.masks is not None:
            for item, area in zip(items, self.masks.areas().tolist()):
                item["mask_area"] = area
            pixels = self.masks.visible_areas(self.scores)
            per_class = np.bincount(self.class_ids, weights=pixels) if len(self) else np.zeros(0)
            width, height = self.masks.frame_size
            event["class_fractions"] = _fractions(per_class / (width * height), label)
        return event

    def maps(self) -> dict[str, np.ndarray]:
        return {} if self.masks is None else {"masks": self.masks.id_map(self.scores)}


def _fractions(fractions: np.ndarray, label: Label) -> dict[str, float]:
    return {label(c): round(float(f), 6) for c, f in enumerate(fractions.tolist()) if f > 0}


@dataclass
class Panoptic:
    """One id per pixel (0 = void) and what each id is: a thing (an instance) or a stuff region."""

    ids: np.ndarray  # [H, W] uint16
    labels: list[str]  # segment i + 1's label
    things: list[bool]
    areas: list[int]

    def to_event(self) -> list[dict[str, Any]]:
        return [{"id": i + 1, "label": label, "thing": thing, "area": area}
                for i, (label, thing, area) in enumerate(zip(self.labels, self.things, self.areas))]


@dataclass
class Segmentation(Result):
    """A class per pixel of the frame. With ``multi_label`` classes are independent and bit k of
    ``class_map`` says whether class k covers the pixel; otherwise ``class_map`` holds the class id."""

    class_map: np.ndarray  # [H, W] uint8 or uint16
    num_classes: int
    multi_label: bool = False
    background: int | None = None  # a class that is not drawn
    panoptic: Panoptic | None = None

    _counts: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def pixel_counts(self) -> np.ndarray:
        """[C] pixels each class covers, counted once per result (the event and the legend both need them)."""
        if self._counts is None:
            if self.multi_label:  # one histogram of the bit patterns, then each pattern's count to its classes
                patterns = count_values(self.class_map, 1 << (8 * self.class_map.itemsize))
                present = np.flatnonzero(patterns)
                bits = (present[:, None] >> np.arange(self.num_classes)) & 1
                self._counts = patterns[present] @ bits
            else:
                self._counts = count_values(self.class_map, self.num_classes)
        return self._counts

    def fractions(self) -> np.ndarray:
        """[C] fraction of the frame's pixels each class covers."""
        return self.pixel_counts() / self.class_map.size

    def to_event(self, label: Label) -> dict[str, Any]:
        event: dict[str, Any] = {"class_fractions": _fractions(self.fractions(), label)}
        if self.panoptic is not None:
            event["segments"] = self.panoptic.to_event()
        return event

    def maps(self) -> dict[str, np.ndarray]:
        maps = {"masks": self.class_map}
        if self.panoptic is not None:
            maps["panoptic"] = self.panoptic.ids
        return maps


@dataclass
class Poses(Result):
    """P people with K keypoints each; ``boxes`` is None for single-pose models run on whole frames."""

    keypoints: np.ndarray  # [P, K, 3] float32 x, y, score
    scores: np.ndarray  # [P] float32
    boxes: np.ndarray | None = None  # [P, 4]

    @classmethod
    def empty(cls, keypoints: int, with_boxes: bool = True) -> Poses:
        return cls(np.zeros((0, keypoints, 3), np.float32), np.zeros(0, np.float32),
                   np.zeros((0, 4), np.float32) if with_boxes else None)

    def __len__(self) -> int:
        return len(self.scores)

    def to_event(self, label: Label) -> dict[str, Any]:
        boxes = [None] * len(self) if self.boxes is None else _round(self.boxes, 1)
        return {"poses": [{"score": s, "box": b, "keypoints": k}
                          for s, b, k in zip(_round(self.scores, 4), boxes, _round(self.keypoints, 2))]}



@dataclass
class Classification(Result):
    """The top-k classes of a whole frame, best first."""

    class_ids: np.ndarray  # [k] int64
    scores: np.ndarray  # [k] float32

    def to_event(self, label: Label) -> dict[str, Any]:
        return {"top": [{"label": label(c), "score": s}
                        for c, s in zip(self.class_ids.tolist(), _round(self.scores, 4))]}



@dataclass
class BoxClasses(Result):
    """Another bundle's detections, each classified on its crop: the detection RESULT whose entries add
    ``"classes": [{"label", "score"}, ...]`` (this bundle's top-k, best first)."""

    detections: Detections
    class_ids: np.ndarray  # [N, k] int64
    scores: np.ndarray  # [N, k] float32
    detector_label: Label

    def to_event(self, label: Label) -> dict[str, Any]:
        event = self.detections.to_event(self.detector_label)
        for item, ids, scores in zip(event["detections"], self.class_ids.tolist(), _round(self.scores, 4)):
            item["classes"] = [{"label": label(c), "score": s} for c, s in zip(ids, scores)]
        return event


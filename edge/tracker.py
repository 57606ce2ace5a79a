"""Multi-object tracking, ByteTrack-style: stable ``track_ids`` for detections across frames.

ByteTrack (Zhang et al., 2022) associates in two stages: confident detections first, against every track
(including recently lost ones); then the weak detections, which plain trackers throw away, against the
tracks still unmatched, which keeps an id through occlusion and motion blur. Motion is a constant-velocity
Kalman filter on (cx, cy, aspect, height) as in SORT/ByteTrack, vectorised over all tracks with NumPy;
assignment is the Hungarian method (``scipy.optimize.linear_sum_assignment``) on 1 − IoU. Boxes of
different classes never match. A track unseen for ``buffer`` frames is forgotten; within that it can be
found again under its old id. A new track gets an id only when it is seen a second time (or on the very
first frame), so one-frame false positives do not use up ids; detections without a track get id -1.

On a frame the detector skipped (``interval``, motion gating) :meth:`ByteTracker.coast` gives the tracked boxes
where the filter predicts them, as DeepStream's tracker carries objects between inferred frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.decoders.nms import box_iou
from edge.results import Detections

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # constant velocity, one frame per step
_H = np.eye(4, 8)
_STD_POSITION, _STD_VELOCITY = 1 / 20, 1 / 160  # ByteTrack's noise weights, relative to box height


def _xyah(boxes: np.ndarray) -> np.ndarray:
    w, h = boxes[:, 2] - boxes[:, 0], np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / h, h], 1).astype(np.float64)


def _boxes(xyah: np.ndarray) -> np.ndarray:
    w = xyah[:, 2] * xyah[:, 3]
    cx, cy, h = xyah[:, 0], xyah[:, 1], xyah[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)


def _joined(detections: Detections, held: Detections) -> Detections:
    """Both sets of detections, in that order; held ones get landmarks of score 0 where the others have some."""
    keypoints = detections.keypoints
    if keypoints is not None:
        keypoints = np.concatenate([keypoints, np.zeros((len(held), *keypoints.shape[1:]), keypoints.dtype)])
    return Detections(np.concatenate([detections.boxes, held.boxes]), np.concatenate([detections.scores, held.scores]),
                      np.concatenate([detections.class_ids, held.class_ids]), keypoints,
                      np.concatenate([detections.track_ids, held.track_ids]))


def _noise(h: np.ndarray, position: float, velocity: float | None, aspect: float) -> np.ndarray:
    """Diagonal covariances [N,d,d] scaled by box height (aspect gets a fixed small noise)."""
    stds = [position * h, position * h, np.full_like(h, aspect), position * h]
    if velocity is not None:
        stds += [velocity * h, velocity * h, np.full_like(h, 1e-5), velocity * h]
    variances = np.stack(stds, 1) ** 2
    return variances[:, :, None] * np.eye(variances.shape[1])


@dataclass
class TrackerSettings:
    high_score: float = 0.5  # first-stage detections
    low_score: float = 0.1  # second-stage detections (below this: ignored)
    new_track_score: float = 0.6  # a detection unmatched by any track starts one if this confident
    match_iou: float = 0.2  # first stage
    low_match_iou: float = 0.5  # second stage
    new_match_iou: float = 0.3  # a new (unconfirmed) track's second sighting
    buffer: int = 30  # frames a lost track is kept for re-finding


class ByteTracker:
    """Tracks the detections of one stream and one model. Call :meth:`update` once per frame, in order."""

    def __init__(self, settings: TrackerSettings | None = None):
        self.settings = settings or TrackerSettings()
        self.frame = 0
        self._next_id = 1
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.ids = np.zeros(0, np.int64)  # 0 while unconfirmed
        self.class_ids = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float32)  # of the detection each track last matched
        self.last_seen = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def update(self, detections: Detections, region: tuple[int, int, int, int] | None = None) -> Detections:
        """Sets ``detections.track_ids`` ([N] int64, -1 for an untracked detection) and returns them. ``region``:
        the detector saw only that part of the frame (motion cropping); tracks predicted outside it are held,
        not lost, and returned too, after the detections (a new object then)."""
        s = self.settings
        self.frame += 1
        self._predict()
        track_ids = np.full(len(detections), -1, np.int64)
        boxes, scores, classes = detections.boxes, detections.scores, detections.class_ids
        free_dets = np.flatnonzero(scores >= s.high_score)
        confirmed = np.flatnonzero(self.ids > 0)
        tracked_now = confirmed[self.last_seen[confirmed] == self.frame - 1]
        matched_t, matched_d = self._associate(confirmed, free_dets, boxes, classes, s.match_iou)
        self._apply(matched_t, matched_d, boxes, scores, track_ids)
        free_dets = np.setdiff1d(free_dets, matched_d)
        weak = np.flatnonzero((scores >= s.low_score) & (scores < s.high_score))
        tracked_left = np.setdiff1d(tracked_now, matched_t)
        second_t, second_d = self._associate(tracked_left, weak, boxes, classes, s.low_match_iou)
        self._apply(second_t, second_d, boxes, scores, track_ids)
        new = np.flatnonzero(self.ids == 0)
        new_t, new_d = self._associate(new, free_dets, boxes, classes, s.new_match_iou)
        self.ids[new_t] = np.arange(self._next_id, self._next_id + len(new_t))
        self._next_id += len(new_t)
        self._apply(new_t, new_d, boxes, scores, track_ids)
        free_dets = np.setdiff1d(free_dets, new_d)
        held = self._hold_outside(region) if region is not None else None
        keep = (self.ids > 0) & (self.frame - self.last_seen <= s.buffer)  # unconfirmed: one chance only
        self._select(keep)
        starters = free_dets[scores[free_dets] >= s.new_track_score]
        first_frame = self.frame == 1
        self._start(boxes[starters], classes[starters], scores[starters], confirm=first_frame)
        if first_frame:
            track_ids[starters] = self.ids[len(self.ids) - len(starters):]
        detections.track_ids = track_ids
        return detections if held is None or not len(held) else _joined(detections, held)

    def _hold_outside(self, region: tuple[int, int, int, int]) -> Detections:
        """The tracks seen on the last frame, unmatched on this one, whose predicted centres lie outside
        ``region``: marked seen, as detections."""
        x1, y1, x2, y2 = region
        cx, cy = self.mean[:, 0], self.mean[:, 1]
        outside = (cx < x1) | (cx > x2) | (cy < y1) | (cy > y2)
        held = np.flatnonzero((self.ids > 0) & (self.last_seen == self.frame - 1) & outside)
        self.last_seen[held] = self.frame
        return Detections(_boxes(self.mean[held, :4]), self.scores[held].copy(), self.class_ids[held].copy(),
                          track_ids=self.ids[held].copy())

    def coast(self, still: bool = False) -> Detections:
        """A frame without detections because the detector did not run on it: the tracks seen on the last
        frame, moved one step by their velocity (``still``: left where they were, for a frame in which nothing
        moved), as detections with their ids and last scores. They stay tracked, not lost."""
        self.frame += 1
        if not still:
            self._predict()
        tracked = np.flatnonzero((self.ids > 0) & (self.last_seen == self.frame - 1))
        self.last_seen[tracked] = self.frame
        return Detections(_boxes(self.mean[tracked, :4]), self.scores[tracked].copy(), self.class_ids[tracked].copy(),
                          track_ids=self.ids[tracked].copy())

    def _predict(self) -> None:
        if not len(self.ids):
            return
        lost = self.last_seen < self.frame - 1
        self.mean[lost, 7] = 0.0  # a lost box keeps its size (ByteTrack zeroes the height velocity)
        h = self.mean[:, 3]
        self.mean = self.mean @ _F.T
        self.cov = _F @ self.cov @ _F.T + _noise(h, _STD_POSITION, _STD_VELOCITY, 1e-2)

    def _associate(self, tracks: np.ndarray, dets: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                   min_iou: float) -> tuple[np.ndarray, np.ndarray]:
        """Hungarian assignment of ``tracks`` to ``dets`` on IoU; pairs below ``min_iou`` are not matches."""
        if not len(tracks) or not len(dets):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        iou = box_iou(_boxes(self.mean[tracks, :4]), boxes[dets])
        iou = np.nan_to_num(iou) * (self.class_ids[tracks, None] == classes[dets][None, :])
        rows, cols = linear_sum_assignment(-iou)
        good = iou[rows, cols] >= min_iou
        return tracks[rows[good]], dets[cols[good]]

    def _apply(self, tracks: np.ndarray, dets: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
               track_ids: np.ndarray) -> None:
        """Kalman update of matched tracks with their detections' boxes."""
        if not len(tracks):
            return
        mean, cov = self.mean[tracks], self.cov[tracks]
        innovation_cov = _H @ cov @ _H.T + _noise(mean[:, 3], _STD_POSITION, None, 1e-1)
        gain = np.linalg.solve(innovation_cov, (cov @ _H.T).transpose(0, 2, 1)).transpose(0, 2, 1)
        residual = _xyah(boxes[dets]) - mean[:, :4]
        self.mean[tracks] = mean + (gain @ residual[:, :, None])[:, :, 0]
        self.cov[tracks] = cov - gain @ _H @ cov
        self.last_seen[tracks] = self.frame
        self.scores[tracks] = scores[dets]
        track_ids[dets] = self.ids[tracks]

    def _select(self, keep: np.ndarray) -> None:
        self.mean, self.cov, self.ids = self.mean[keep], self.cov[keep], self.ids[keep]
        self.class_ids, self.scores, self.last_seen = self.class_ids[keep], self.scores[keep], self.last_seen[keep]

    def _start(self, boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, confirm: bool) -> None:
        count = len(boxes)
        if not count:
            return
        xyah = _xyah(boxes)
        mean = np.concatenate([xyah, np.zeros_like(xyah)], 1)
        cov = _noise(xyah[:, 3], 2 * _STD_POSITION, 10 * _STD_VELOCITY, 1e-2)
        ids = np.arange(self._next_id, self._next_id + count) if confirm else np.zeros(count, np.int64)
        self._next_id += count if confirm else 0
        self.mean, self.cov = np.concatenate([self.mean, mean]), np.concatenate([self.cov, cov])
        self.ids = np.concatenate([self.ids, ids])
        self.class_ids = np.concatenate([self.class_ids, classes.astype(np.int64)])
        self.scores = np.concatenate([self.scores, scores.astype(np.float32)])
        self.last_seen = np.concatenate([self.last_seen, np.full(count, self.frame)])

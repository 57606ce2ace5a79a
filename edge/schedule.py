"""Inference only when needed: which bundles run on each frame of a stream.

Two reasons to skip a bundle on a frame, as DeepStream and Frigate skip them:

- ``interval``: a bundle given ``interval: N`` runs on every N-th frame of each stream (DeepStream's
  ``nvinfer`` ``interval``); the tracker carries its boxes in between.
- motion gating: with ``motion`` on, a frame in which nothing moved (:mod:`edge.motion`) runs no bundle; at
  least one frame every ``refresh_s`` of stream time still runs them all, so a change the motion detector
  missed is found there. With ``crop`` too, a frame whose motion covers less than ``CROP_MAX_AREA`` of it gets a
  ``region`` (the moving pixels' box and a margin): detectors run on that part of the frame only, as Frigate
  runs its detector on motion regions, and the tracker holds the boxes elsewhere.

A bundle that works on another's result (``needs``) runs only on frames where that one runs. The plan of a
frame depends only on the frames of its stream before it, never on timing, so a replay plans the same
frames every time. One :class:`InferenceSchedule` per run, asked once per frame in take order
(:meth:`edge.pipeline.Pipeline._take` holds a lock around the take and the plans).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from edge.bundle import Bundle
from edge.errors import UsageError
from edge.motion import MotionDetector
from streams.base import Frame

CROP_MAX_AREA = 0.5  # motion over more of the frame than this: the whole frame is inferred
CROP_MARGIN = 0.25  # the region grows by this much of the moving box's size on every side


class Skip(str, Enum):
    INTERVAL = "interval"
    MOTION = "motion"


@dataclass(frozen=True)
class MotionGate:
    """Motion gating's settings (``RunConfig.motion``, ``motion_area``)."""

    min_area: float = 0.002  # fraction of the frame that must change
    threshold: int = 20  # grey levels a pixel must change by
    refresh_s: float = 10.0  # at most this long (stream time) without inference
    crop: bool = False  # detectors on the moving region only

    def __post_init__(self) -> None:
        if not 0 < self.min_area <= 1:
            raise UsageError(f"--motion-area: a fraction of the frame, above 0 and at most 1, not {self.min_area}")


@dataclass(frozen=True)
class FramePlan:
    """One frame's plan: the bundles that infer on it and, for the others, why not. ``still``: motion gating
    found nothing moving, so what is carried over stays where it was; ``region`` (x1, y1, x2, y2): the part of
    the frame detectors run on, when motion cropping is on."""

    run: frozenset[str]
    skipped: Mapping[str, Skip] = field(default_factory=dict)
    still: bool = False
    region: tuple[int, int, int, int] | None = None


class _StreamState:
    def __init__(self, gate: MotionGate | None):
        self.frames = 0
        self.detector = MotionDetector(gate.threshold, gate.min_area) if gate is not None else None
        self.last_inferred_pts: float | None = None


class InferenceSchedule:
    """Plans each frame of each stream (``interval`` by bundle name; ``gate`` for motion gating, or ``None``)."""

    def __init__(self, bundles: Sequence[Bundle], intervals: Mapping[str, int] | None = None,
                 gate: MotionGate | None = None):
        intervals = dict(intervals or {})
        names = [b.name for b in bundles]
        for name, every in intervals.items():
            if name not in names:
                raise UsageError(f"--interval: no bundle named '{name}' in this run (bundles: {', '.join(names)})")
            if every < 1:
                raise UsageError(f"--interval: {name}={every}: must be at least 1")
        self.intervals = {name: intervals.get(name, 1) for name in names}
        self.upstream = {b.name: b.needs.upstream for b in bundles if b.needs}
        self.gate = gate
        self._streams: dict[int, _StreamState] = {}

    @property
    def active(self) -> bool:
        """Whether any frame may skip a bundle."""
        return self.gate is not None or any(every > 1 for every in self.intervals.values())

    def plan(self, frame: Frame) -> FramePlan:
        """The plan of the stream's next frame; call once per frame, in the stream's order."""
        state = self._streams.get(frame.source)
        if state is None:
            state = self._streams[frame.source] = _StreamState(self.gate)
        count, state.frames = state.frames, state.frames + 1
        region = None
        if state.detector is not None:
            motion = state.detector(frame.image)
            due = state.last_inferred_pts is None or frame.pts - state.last_inferred_pts >= self.gate.refresh_s
            if not motion.moving and not due:
                return FramePlan(frozenset(), dict.fromkeys(self.intervals, Skip.MOTION), still=True)
            if self.gate.crop and motion.moving and not due:
                region = _region(motion.box, frame.image.shape[1], frame.image.shape[0])
        skipped = {name: Skip.INTERVAL for name, every in self.intervals.items() if count % every}
        for name in self.intervals:  # a bundle whose upstream skips this frame skips it too
            upstream = self.upstream.get(name)
            while upstream is not None and name not in skipped:
                if upstream in skipped:
                    skipped[name] = skipped[upstream]
                upstream = self.upstream.get(upstream)
        run = frozenset(self.intervals).difference(skipped)
        if run and region is None:
            state.last_inferred_pts = frame.pts  # a cropped frame does not refresh the whole picture
        return FramePlan(run, skipped, region=region)


def _region(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The moving box with its margin, inside the frame; ``None`` when that is most of the frame."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
    x1, y1, x2, y2 = max(0, int(x1 - dx)), max(0, int(y1 - dy)), min(width, int(x2 + dx)), min(height, int(y2 + dy))
    return None if (x2 - x1) * (y2 - y1) > CROP_MAX_AREA * width * height else (x1, y1, x2, y2)

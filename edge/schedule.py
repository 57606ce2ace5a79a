"""Inference only when needed: which bundles run on each frame of a stream.

Two reasons to skip a bundle on a frame, as DeepStream and Frigate skip them:

- ``interval``: a bundle given ``interval: N`` runs on every N-th frame of each stream (DeepStream's
  ``nvinfer`` ``interval``); the tracker carries its boxes in between.
- motion gating: with ``motion`` on, a frame in which nothing moved (:mod:`edge.motion`) runs no bundle; at
  least one frame every ``refresh_s`` of stream time still runs them all, so a change the motion detector
  missed is found there.

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


class Skip(str, Enum):
    INTERVAL = "interval"
    MOTION = "motion"


@dataclass(frozen=True)
class MotionGate:
    """Motion gating's settings (``RunConfig.motion``, ``motion_area``)."""

    min_area: float = 0.002  # fraction of the frame that must change
    threshold: int = 20  # grey levels a pixel must change by
    refresh_s: float = 10.0  # at most this long (stream time) without inference

    def __post_init__(self) -> None:
        if not 0 < self.min_area <= 1:
            raise UsageError(f"--motion-area: a fraction of the frame, above 0 and at most 1, not {self.min_area}")


@dataclass(frozen=True)
class FramePlan:
    """One frame's plan: the bundles that infer on it and, for the others, why not. ``still``: motion gating
    found nothing moving, so what is carried over stays where it was."""

    run: frozenset[str]
    skipped: Mapping[str, Skip] = field(default_factory=dict)
    still: bool = False


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
        if state.detector is not None:
            moving = state.detector(frame.image).moving
            due = state.last_inferred_pts is None or frame.pts - state.last_inferred_pts >= self.gate.refresh_s
            if not moving and not due:
                return FramePlan(frozenset(), dict.fromkeys(self.intervals, Skip.MOTION), still=True)
        skipped = {name: Skip.INTERVAL for name, every in self.intervals.items() if count % every}
        for name in self.intervals:  # a bundle whose upstream skips this frame skips it too
            upstream = self.upstream.get(name)
            while upstream is not None and name not in skipped:
                if upstream in skipped:
                    skipped[name] = skipped[upstream]
                upstream = self.upstream.get(upstream)
        run = frozenset(self.intervals).difference(skipped)
        if run:
            state.last_inferred_pts = frame.pts
        return FramePlan(run, skipped)

"""The dispatcher's tracking stage: track ids on detections, and a result for every bundle on every frame.

It runs in frame order, once per frame, between inference and the sinks. Detections get ``track_id``s from
one :class:`~edge.tracker.ByteTracker` per stream and bundle. A bundle that did not infer on a frame
(:mod:`edge.schedule`: ``interval``, motion gating) still has a result there, *carried*: a detector's
tracked boxes where the tracker predicts them (left in place on a frame where nothing moved), anything else
(or detections without tracking) the bundle's last result on that stream. Events mark carried results
(``"inferred": false``). A detector that ran on a moving region only (motion cropping) keeps, besides what it
found there, the tracked boxes outside it.
"""

from __future__ import annotations

from typing import Any

from edge.results import Detections
from edge.schedule import FramePlan
from edge.tracker import ByteTracker


class TrackStage:
    """Per stream and bundle: a tracker (when ``track``) and the last result. ``croppable``: the bundles that run
    on a frame's motion region when its plan has one."""

    def __init__(self, track: bool, croppable: frozenset[str] = frozenset()):
        self.track, self.croppable = track, croppable
        self.trackers: dict[tuple[int, str], ByteTracker] = {}
        self._last: dict[tuple[int, str], Any] = {}

    def apply(self, source: int, bundles: list[str], results: dict[str, Any], plan: FramePlan | None
              ) -> frozenset[str]:
        """Tracks ``results`` (in place) and fills in every bundle of ``bundles`` missing from them, in that
        order; returns the names of the carried ones."""
        carried = []
        for name in bundles:
            key = (source, name)
            result = results.get(name)
            if result is None:
                results[name] = result = self._carry(key, plan is not None and plan.still)
                carried.append(name)
            elif self.track and isinstance(result, Detections):
                region = plan.region if plan is not None and name in self.croppable else None
                results[name] = result = self._tracker(key).update(result, region)
            self._last[key] = result
        if carried:  # back in the bundles' order
            ordered = {name: results[name] for name in bundles}
            results.clear()
            results.update(ordered)
        return frozenset(carried)

    def _tracker(self, key: tuple[int, str]) -> ByteTracker:
        tracker = self.trackers.get(key)
        if tracker is None:
            tracker = self.trackers[key] = ByteTracker()
        return tracker

    def _carry(self, key: tuple[int, str], still: bool) -> Any:
        last = self._last.get(key)
        if self.track and isinstance(last, Detections):
            return self._tracker(key).coast(still)
        if last is None:
            raise RuntimeError(f"bundle '{key[1]}' skipped the first frame of a stream")  # the schedule never does
        return last

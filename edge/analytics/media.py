"""The names of the snapshots and clips of analytics events, decided in the analytics stage, in frame order, so
that the events can carry them (:mod:`edge.analytics.recorder` writes the files).

A snapshot per event: ``snapshots/<stream>_<pts>_<frame>_<type>_<zone or line>[_<track>].jpg``. An event
opens a clip ``clips/<same stem>.mp4`` that ends ``post_s`` after it; an event while one is open extends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.analytics.settings import AnalyticsSettings
from edge.paths import safe_name
from streams.base import Frame


@dataclass(frozen=True)
class ClipCue:
    """The clip a frame belongs to: its path under the output folder and the stream time it ends at."""

    name: str
    until: float


class MediaPlan:
    """Names the snapshots and clips of one run's events, per stream, in frame order."""

    def __init__(self, settings: AnalyticsSettings):
        self.snapshots = settings.snapshots
        self.clips = settings.clips
        self._open: dict[int, ClipCue] = {}

    def name(self, frame: Frame, events: list[dict[str, Any]]) -> ClipCue | None:
        """Adds ``snapshot`` and ``clip`` to the frame's ``events``; returns the clip the frame is in, if any."""
        cue = self._open.get(frame.source)
        if cue is not None and frame.pts > cue.until:
            del self._open[frame.source]
            cue = None
        for event in events:
            stem = _stem(frame, event)
            if self.snapshots:
                event["snapshot"] = f"snapshots/{stem}.jpg"
            if self.clips is not None:
                cue = ClipCue(cue.name if cue is not None else f"clips/{stem}.mp4", frame.pts + self.clips.post_s)
                self._open[frame.source] = cue
                event["clip"] = cue.name
        return cue


def _stem(frame: Frame, event: dict[str, Any]) -> str:
    where = event.get("zone", event.get("line", ""))
    track = f"_{event['track_id']}" if "track_id" in event else ""
    return f"{safe_name(frame.stream)}_{frame.pts:011.3f}_{frame.index:06d}_{event['type']}_{safe_name(where)}{track}"

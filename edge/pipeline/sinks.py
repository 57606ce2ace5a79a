"""The pipeline's sinks: what happens to each :class:`~edge.pipeline.messages.FrameResult`, through the
writers and servers in ``streams``.

Each sink has ``write(item)``, ``close()`` and a ``critical`` flag, and does one thing per frame. Files are
critical (a run that cannot write its events should stop); network outputs are not (a broker that is down
must not stop the events): :class:`SinkSet` runs them all and keeps a failing non-critical one from
stopping the others. Sinks read results, labels and the event from the item; they never reach back to the
runners, and they draw nothing on the frame the others read (``item.annotated()`` is a copy).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge.pipeline.messages import FrameResult
from edge.results import Detections, Label
from streams.http import FrameHub
from streams.mqtt import MqttPublisher
from streams.uris import safe_name
from streams.writers import EventLog, ImageFolderWriter, VideoFileWriter

log = logging.getLogger("edge.pipeline")


class Sink(Protocol):
    critical: bool

    def write(self, item: FrameResult) -> None: ...

    def close(self) -> None: ...


class SinkSet:
    """Every sink, in order, for each frame. A critical sink's failure ends the run (it propagates); any
    other sink's failure is logged (at its 1st, 10th, 100th, then every 1000th time) and counted in
    ``errors`` by sink type, and the run goes on."""

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks = list(sinks)
        self.errors: dict[str, int] = {}

    def write(self, item: FrameResult) -> None:
        for sink in self.sinks:
            if sink.critical:
                sink.write(item)
                continue
            try:
                sink.write(item)
            except Exception as e:  # a network output must not stop the others
                name = type(sink).__name__
                count = self.errors[name] = self.errors.get(name, 0) + 1
                if count in (1, 10, 100) or count % 1000 == 0:
                    log.warning("sink failed", extra={"sink": name, "error": str(e), "count": count})

    def close(self) -> None:
        """Closes every sink (finalising video files, flushing events) even if one fails; raises the first."""
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:
                first = first or e
        if first is not None:
            raise first


class EventsSink:
    """``events.jsonl``, one whole line per frame (:class:`streams.writers.EventLog`); rotated by size when
    ``max_bytes`` is given; ``append`` keeps an earlier run's lines."""

    critical = True

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = 5, *, append: bool = False):
        self.log = EventLog(path, max_bytes, backups, append=append)

    def write(self, item: FrameResult) -> None:
        self.log.write(item.event_json)

    def close(self) -> None:
        self.log.close()


class VideoSink:
    """Annotated video per stream: ``annotated.mp4`` for a single stream, ``annotated-<stream>.mp4`` for
    several. Each file opens on its stream's first frame, at the stream's nominal rate."""

    critical = True

    def __init__(self, out: Path, several_streams: bool):
        self.out = out
        self.several = several_streams
        self.writers: dict[str, VideoFileWriter] = {}

    def path_for(self, stream: str) -> Path:
        if not self.several:
            return self.out / "annotated.mp4"
        return self.out / f"annotated-{safe_name(stream)}.mp4"

    def write(self, item: FrameResult) -> None:
        stream = item.frame.stream
        writer = self.writers.get(stream)
        if writer is None:
            writer = self.writers[stream] = VideoFileWriter(self.path_for(stream), item.fps or 30.0)
        writer.write(item.annotated())

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class MapsSink:
    """``--save-masks``: every frame's class, instance and panoptic id maps as lossless PNGs,
    ``<kind>/<bundle>/<frame>.png`` (under ``<stream>/`` when there are several streams)."""

    critical = True

    def __init__(self, out: Path, several_streams: bool):
        self.writer = ImageFolderWriter(out)
        self.several = several_streams

    def write(self, item: FrameResult) -> None:
        prefix = f"{safe_name(item.frame.stream)}/" if self.several else ""
        for bundle, result in item.results.items():
            for kind, image in result.maps().items():
                self.writer.write(f"{prefix}{kind}/{bundle}/{item.frame.index:06d}.png", image)

    def close(self) -> None:
        pass


class LabelCounter:
    """Detections counted per class id and named once per class: per label (``counts``, every frame's
    detections), per bundle and label (``by_bundle``, for ``/metrics``), and, where tracking gives ids,
    distinct tracks per label (``tracks``: a track counts once, under the label of its first detection)."""

    critical = True

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_bundle: Counter[tuple[str, str]] = Counter()
        self.tracks: Counter[str] = Counter()
        self._counted: dict[tuple[int, str], np.ndarray] = {}  # per stream and bundle: track id → counted yet

    def write(self, item: FrameResult) -> None:
        for name, result in item.results.items():
            if isinstance(result, Detections) and len(result):
                label = item.labels[name]
                for class_label, count in _per_label(result.class_ids, label):
                    self.counts[class_label] += count
                    self.by_bundle[name, class_label] += count
                if result.track_ids is not None:
                    fresh = self._first_seen((item.frame.source, name), result.track_ids)
                    for class_label, count in _per_label(result.class_ids[fresh], label):
                        self.tracks[class_label] += count

    def _first_seen(self, key: tuple[int, str], track_ids: np.ndarray) -> np.ndarray:
        """Mask of the detections whose track is seen for the first time (-1, untracked, never is)."""
        counted = self._counted.get(key, np.zeros(64, bool))
        tracked = track_ids >= 0
        if tracked.any() and track_ids.max() >= len(counted):
            counted = np.concatenate([counted, np.zeros(max(len(counted), int(track_ids.max()) + 1), bool)])
        fresh = tracked.copy()
        fresh[tracked] = ~counted[track_ids[tracked]]
        counted[track_ids[fresh]] = True
        self._counted[key] = counted
        return fresh

    def close(self) -> None:
        pass


def _per_label(class_ids: np.ndarray, label: Label) -> list[tuple[str, int]]:
    """(label, count) of the classes present, counted with one bincount."""
    if len(class_ids) == 0:
        return []
    per_class = np.bincount(class_ids)
    found = np.flatnonzero(per_class)
    return [(label(c), n) for c, n in zip(found.tolist(), per_class[found].tolist())]


class LatestEvents:
    """Each stream's latest event (the dict every sink already shares, not a copy), for the live page."""

    critical = False

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}

    def write(self, item: FrameResult) -> None:
        self.events[item.frame.stream] = item.event

    def close(self) -> None:
        pass


class PreviewSink:
    """Annotated frames, JPEG-encoded for the live preview only while someone watches (rate-capped)."""

    critical = False
    QUALITY = 80

    def __init__(self, hub: FrameHub):
        self.hub = hub

    def write(self, item: FrameResult) -> None:
        stream = item.frame.stream
        if self.hub.wants(stream):
            ok, jpeg = cv2.imencode(".jpg", item.annotated(), [cv2.IMWRITE_JPEG_QUALITY, self.QUALITY])
            if ok:
                self.hub.publish(stream, jpeg.tobytes())

    def close(self) -> None:
        pass


class ProgressSink:
    """A terminal's progress bar over the delivered frames (``edge replay``, ``edge demo``): its total comes
    from ``total()`` (the source's length, known once it opened) at the first frame."""

    critical = False

    def __init__(self, bar: Any, total: Callable[[], int | None]):
        self.bar, self.total = bar, total
        self._started = False

    def write(self, item: FrameResult) -> None:
        if not self._started:
            self._started = True
            self.bar.total = self.total()
            self.bar.refresh()
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class MqttSink:
    """Each event to ``topic`` (``{device}`` and ``{stream}`` filled in), with the device name added in front
    of the event's own encoding (the JSON is encoded once per frame, for the events file and here). Each
    analytics event (zones, lines) also goes alone to ``analytics_topic``, with the device, stream, frame and
    pts, as Frigate publishes its events: what a home-automation rule subscribes to."""

    critical = False

    def __init__(self, publisher: MqttPublisher, topic: str, device: str,
                 analytics_topic: str = "edge/{device}/{stream}/analytics"):
        self.publisher, self.topic, self.device, self.analytics_topic = publisher, topic, device, analytics_topic
        self._prefix = f'{{"device":{json.dumps(device)},'

    def write(self, item: FrameResult) -> None:
        topic = self.topic.format(device=self.device, stream=item.frame.stream)
        self.publisher.publish(topic, self._prefix + item.event_json[1:])
        if item.analytics is not None and item.analytics.events:
            frame = item.frame
            topic = self.analytics_topic.format(device=self.device, stream=frame.stream)
            for event in item.analytics.events:
                self.publisher.publish(topic, json.dumps({"device": self.device, "stream": frame.stream,
                                                          "frame": frame.index, "pts": round(frame.pts, 6), **event},
                                                         separators=(",", ":")))

    def close(self) -> None:
        self.publisher.close()

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
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.pipeline.messages import FrameResult
from edge.results import Detections
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
    """``events.jsonl``, one line per frame, flushed; rotated by size when ``max_bytes`` is given."""

    critical = True

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = 5):
        self.log = EventLog(path, max_bytes, backups)

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
    """Per-label detection totals for the summary: counted per class id, named once per class."""

    critical = True

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def write(self, item: FrameResult) -> None:
        for name, result in item.results.items():
            if isinstance(result, Detections) and len(result):
                per_class = np.bincount(result.class_ids)
                found = np.flatnonzero(per_class)
                label = item.labels[name]
                for class_id, count in zip(found.tolist(), per_class[found].tolist()):
                    self.counts[label(class_id)] += count

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

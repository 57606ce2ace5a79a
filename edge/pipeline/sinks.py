"""Pipeline sinks: adapters from a :class:`~edge.pipeline.Processed` frame to the outputs in ``streams``.

Each sink does one thing per frame and is closed once at the end. Files are critical (a run that cannot
write its events should stop); network outputs are not (a broker that is down must not stop the events).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import cv2

from edge.pipeline import Processed
from edge.results import Detections
from streams.http import FrameHub
from streams.mqtt import MqttPublisher
from streams.sinks import EventLog, ImageFolderWriter, VideoFileWriter


class EventsSink:
    """``events.jsonl``, one line per frame, flushed; rotated by size when ``max_bytes`` is given."""

    critical = True

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = 5):
        self.log = EventLog(path, max_bytes, backups)

    def write(self, item: Processed) -> None:
        self.log.write(item.event)

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
        return self.out / f"annotated-{_safe(stream)}.mp4"

    def write(self, item: Processed) -> None:
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

    def write(self, item: Processed) -> None:
        prefix = f"{_safe(item.frame.stream)}/" if self.several else ""
        for bundle, images in item.models.maps(item.results).items():
            for kind, image in images.items():
                self.writer.write(f"{prefix}{kind}/{bundle}/{item.frame.index:06d}.png", image)

    def close(self) -> None:
        pass


def _safe(stream: str) -> str:
    """A stream name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stream)


class LabelCounter:
    """Per-label detection totals for the summary."""

    critical = True

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def write(self, item: Processed) -> None:
        for model in item.models.models:
            result = item.results[model.name]
            if isinstance(result, Detections):
                self.counts.update(model.bundle.label(c) for c in result.class_ids.tolist())

    def close(self) -> None:
        pass


class PreviewSink:
    """Annotated frames, JPEG-encoded for the live preview only while someone watches (rate-capped)."""

    critical = False
    QUALITY = 80

    def __init__(self, hub: FrameHub):
        self.hub = hub

    def write(self, item: Processed) -> None:
        stream = item.frame.stream
        if self.hub.wants(stream):
            ok, jpeg = cv2.imencode(".jpg", item.annotated(), [cv2.IMWRITE_JPEG_QUALITY, self.QUALITY])
            if ok:
                self.hub.publish(stream, jpeg.tobytes())

    def close(self) -> None:
        pass


class MqttSink:
    """Each event to ``topic`` (``{device}`` and ``{stream}`` filled in), with the device name added."""

    critical = False

    def __init__(self, publisher: MqttPublisher, topic: str, device: str):
        self.publisher, self.topic, self.device = publisher, topic, device

    def write(self, item: Processed) -> None:
        topic = self.topic.format(device=self.device, stream=item.frame.stream)
        self.publisher.publish(topic, {"device": self.device, **item.event})

    def close(self) -> None:
        self.publisher.close()

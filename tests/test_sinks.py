"""The pipeline's sinks: a failing network output does not stop the others, a sink after the video sink sees
the frame as decoded, the picture is drawn once per frame, labels are counted per class, and the event JSON
is encoded once for the events file and MQTT alike."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest

from edge.graph import RunnerGraph
from edge.pipeline import FrameResult, Pipeline, SinkSet
from edge.pipeline.messages import annotate_copy
from edge.pipeline.sinks import EventsSink, LabelCounter, MqttSink, VideoSink
from edge.results import Detections
from streams.base import Frame
from streams.feed import SourceSpec
from tests.helpers.publisher import Publisher

LABELS = ("person", "car", "dog")


def detections(class_ids) -> Detections:
    n = len(class_ids)
    boxes = np.tile(np.array([[10, 10, 60, 50]], np.float32), (n, 1))
    return Detections(boxes, np.full(n, 0.9, np.float32), np.array(class_ids, np.int64))


def item(index=0, class_ids=(0, 1, 1)) -> FrameResult:
    frame = Frame(np.zeros((120, 160, 3), np.uint8), index, index / 30, "door", 0.0, 0.0)
    label = dict(enumerate(LABELS)).get
    return FrameResult(frame, {"det": detections(class_ids)}, {"det": lambda c: label(c, f"class_{c}")}, 30.0)


class Recorder:
    critical = True

    def __init__(self):
        self.frames, self.images, self.closed = [], [], False

    def write(self, item):
        self.frames.append(item.frame.index)
        self.images.append(item.frame.image.copy())

    def close(self):
        self.closed = True


class Broken:
    def __init__(self, critical):
        self.critical = critical
        self.closed = False

    def write(self, item):
        raise ConnectionError("broker down")

    def close(self):
        self.closed = True
        raise OSError("cannot close")


def test_a_failing_network_sink_is_counted_and_the_others_go_on():
    first, last = Recorder(), Recorder()
    sinks = SinkSet([first, Broken(critical=False), last])
    for index in range(12):
        sinks.write(item(index))
    assert first.frames == last.frames == list(range(12))
    assert sinks.errors == {"Broken": 12}
    with pytest.raises(OSError, match="cannot close"):
        sinks.close()  # every sink is closed, then the first failure is raised
    assert first.closed and last.closed and sinks.sinks[1].closed


def test_a_failing_critical_sink_stops_the_frame():
    last = Recorder()
    sinks = SinkSet([Broken(critical=True), last])
    with pytest.raises(ConnectionError):
        sinks.write(item())
    assert last.frames == [] and sinks.errors == {}


def test_the_picture_is_drawn_on_a_copy_once_per_frame():
    calls = []

    def counted(image, results):
        calls.append(image)
        return annotate_copy(image, results)

    result = item()
    result.annotate = counted
    decoded = result.frame.image.copy()
    first, second = result.annotated(), result.annotated()
    assert first is second and len(calls) == 1
    assert np.array_equal(result.frame.image, decoded)  # the shared frame is untouched
    assert not np.array_equal(first, decoded)  # and the copy has the boxes


def test_label_counts_per_class_match_a_count_per_box():
    counter = LabelCounter()
    rng = np.random.default_rng(0)
    expected: Counter[str] = Counter()
    for index in range(20):
        ids = rng.integers(0, 5, rng.integers(0, 30)).tolist()  # ids 3 and 4 have no label: class_3, class_4
        counter.write(item(index, ids))
        expected.update(LABELS[c] if c < len(LABELS) else f"class_{c}" for c in ids)
    assert counter.counts == expected


def test_events_and_mqtt_share_one_encoding(tmp_path, monkeypatch):
    encodings = []
    real_dumps = json.dumps

    def counted(document, **kwargs):
        encodings.append(document)
        return real_dumps(document, **kwargs)

    publisher = Publisher()
    sinks = SinkSet([EventsSink(tmp_path / "events.jsonl"), MqttSink(publisher, "edge/{device}/{stream}", "unit-7")])
    monkeypatch.setattr(json, "dumps", counted)
    sinks.write(item())
    monkeypatch.undo()
    sinks.close()
    assert len(encodings) == 1  # the event, once (the device name was encoded when the sink was made)
    line = (tmp_path / "events.jsonl").read_text().strip()
    (topic, payload), = publisher.sent
    assert topic == "edge/unit-7/door"
    assert json.loads(payload) == {"device": "unit-7", **json.loads(line)}
    assert list(json.loads(payload))[:2] == ["device", "stream"]


def test_a_sink_after_the_video_sink_sees_the_decoded_frame(yolox_bundle, assets, tmp_path):
    """Through the real pipeline: YOLOX finds cars in the highway clip and the video shows their boxes, while
    the sink written after the video sink gets exactly the pixels the decoder produced."""
    folder = tmp_path / "frames"
    folder.mkdir()
    capture = cv2.VideoCapture(str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"))
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), capture.read()[1])
    after = Recorder()
    graph = RunnerGraph([yolox_bundle], "onnxruntime", threads=1)
    pipeline = Pipeline([SourceSpec(str(folder))], [graph], [VideoSink(tmp_path, several_streams=False), after])
    drawn = []
    pipeline.annotate = lambda image, results: drawn.append(annotate_copy(image, results)) or drawn[-1]
    pipeline.run()
    pipeline.close_sinks()
    graph.close()
    assert after.frames == list(range(4)) and len(drawn) == 4
    for i, image in enumerate(after.images):
        decoded = cv2.imread(str(folder / f"{i:03d}.png"))
        assert np.array_equal(image, decoded)
        assert np.count_nonzero(drawn[i] != decoded) > 100  # boxes and captions were drawn, on the copy

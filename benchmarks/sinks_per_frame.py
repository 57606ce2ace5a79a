"""What the sinks cost per frame, against how they did it before the pipeline package (issue 12):

    python -m benchmarks.sinks_per_frame [--boxes 100] [--classes 3] [--repeat 2000]

- label counting: a Python loop over boxes (a label call per box) vs ``LabelCounter`` (bincount per bundle,
  a label call per class found);
- the event JSON for the events file and MQTT: encoded twice vs ``FrameResult.event_json`` once, MQTT's
  device name put in front of it;
- the copy a frame's annotation is drawn on (1080p), the price of never drawing on the shared frame.

Medians of ``--repeat`` calls, interleaved so other load hits both alike; the ratios are what to quote.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from edge.pipeline.messages import FrameResult
from edge.pipeline.sinks import LabelCounter, MqttSink
from edge.results import Detections
from streams.base import Frame


class Discard:
    def publish(self, topic: str, payload: str) -> None:
        pass


def medians_us(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boxes", type=int, default=100)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.boxes
    detections = Detections(rng.uniform(0, 1000, (n, 4)).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32),
                            rng.integers(0, args.classes, n).astype(np.int64))
    names = [f"class{i}" for i in range(80)]

    def label(class_id: int) -> str:
        return names[class_id] if 0 <= class_id < len(names) else f"class_{class_id}"

    image = np.zeros((1080, 1920, 3), np.uint8)
    item = FrameResult(Frame(image, 0, 0.0, "door", 0.0, 0.0), {"yolox": detections}, {"yolox": label}, 30.0)
    per_box: Counter[str] = Counter()
    counter = LabelCounter()
    mqtt = MqttSink(Discard(), "edge/{device}/{stream}/events", "unit-7")

    def encoded_twice() -> None:
        json.dumps(item.event, separators=(",", ":"))
        json.dumps({"device": "unit-7", **item.event}, separators=(",", ":"))

    def encoded_once() -> None:
        item._event_json = None  # as a new frame: encode, then reuse for MQTT
        mqtt.write(item)

    counting = medians_us({"per box": lambda: per_box.update(label(c) for c in detections.class_ids.tolist()),
                           "bincount": lambda: counter.write(item)}, args.repeat)
    encoding = medians_us({"twice": encoded_twice, "once": encoded_once}, args.repeat)
    copy = medians_us({"copy": image.copy}, max(1, args.repeat // 10))
    print(f"label counting, {n} boxes of {args.classes} classes: per box {counting['per box']:.1f} us, "
          f"bincount {counting['bincount']:.1f} us ({counting['per box'] / counting['bincount']:.2f}x)")
    print(f"event JSON for events + MQTT: twice {encoding['twice']:.0f} us, once {encoding['once']:.0f} us "
          f"({encoding['twice'] / encoding['once']:.2f}x)")
    print(f"1080p copy to draw on: {copy['copy']:.0f} us")


if __name__ == "__main__":
    main()

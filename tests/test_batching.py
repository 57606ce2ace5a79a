"""Frames of several streams in one inference call, where the bundle's batch dimension is dynamic: the same
results as one frame a call, fewer calls, and static-batch bundles unchanged beside them."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.cli import main
from edge.config import DaemonConfig, SourceConfig, load_config
from edge.daemon import Daemon
from edge.decoders import DECODERS
from edge.decoders.classification import TopKDecoder
from edge.errors import UsageError
from edge.graph import RunnerGraph
from edge.pipeline import Pipeline
from edge.telemetry import registry_for
from streams.feed import SourceSpec
from tests.helpers import slow_backend  # noqa: F401 (registers the "slow" test backend)

torch = pytest.importorskip("torch")

from compile import torchvision_classification as tvc  # noqa: E402
from compile.build import compile_model  # noqa: E402

VIDEOS = ("videos/bgslibrary_highway_traffic_320x240.avi", "videos/one-by-one-person-detection.mp4")


@pytest.fixture(scope="module")
def classifier(live_weights, tmp_path_factory):
    """MobileNetV3-small at 96 × 96 with live random weights, exported by ``compile`` with a dynamic batch."""
    folder = tmp_path_factory.mktemp("mnv3")
    net = live_weights(tvc.build_classifier("mobilenet_v3_small"), (4, 3, 96, 96))
    torch.save(net.state_dict(), folder / "live.pth")
    return compile_model("mobilenet_v3_small", folder / "bundle", task="classification",
                         checkpoint=folder / "live.pth", name="mnv3", input_size=(96, 96))


@pytest.fixture(scope="module")
def frames(assets):
    """Six frames from each of two videos of different sizes, as two streams deliver them."""
    per_video = []
    for video in VIDEOS:
        capture = cv2.VideoCapture(str(assets / video))
        per_video.append([capture.read()[1] for _ in range(6)])
        capture.release()
    return per_video


class Calls:
    """Counts a real backend's inference calls (wraps ``submit``, still runs it)."""

    def __init__(self, backend):
        self.count, submit = 0, backend.submit

        def counted(slot):
            self.count += 1
            submit(slot)

        backend.submit = counted


def assert_same_classes(batched, alone) -> None:
    """Same top classes; scores equal to float tolerance (a near-tie may swap two neighbours' order)."""
    assert batched.class_ids[0] == alone.class_ids[0]
    ours = dict(zip(batched.class_ids.tolist(), batched.scores.tolist()))
    theirs = dict(zip(alone.class_ids.tolist(), alone.scores.tolist()))
    common = ours.keys() & theirs.keys()
    assert len(common) >= 4
    np.testing.assert_allclose([ours[c] for c in common], [theirs[c] for c in common], rtol=0, atol=1e-5)


def test_two_streams_in_one_call_give_the_per_frame_results(classifier, yolox_bundle, frames):
    batched = RunnerGraph([classifier, yolox_bundle], "onnxruntime", threads=1, batch=2)
    alone = RunnerGraph([classifier, yolox_bundle], "onnxruntime", threads=1)
    by_name = {m.name: m for m in batched.runners}
    assert (by_name["mnv3"].batch, by_name["yolox_nano"].batch, batched.batch, alone.batch) == (2, 1, 2, 1)
    calls = {name: Calls(model.backend) for name, model in by_name.items()}
    for pair in zip(*frames):
        results = batched.run(list(pair))
        for image, result in zip(pair, results):
            expected = alone(image)
            assert_same_classes(result["mnv3"], expected["mnv3"])
            np.testing.assert_array_equal(result["yolox_nano"].class_ids, expected["yolox_nano"].class_ids)
            np.testing.assert_allclose(result["yolox_nano"].boxes, expected["yolox_nano"].boxes, atol=1e-3)
    assert calls["mnv3"].count == 6  # twelve frames, two per call
    assert calls["yolox_nano"].count == 12  # static batch 1: one per call, as before
    assert batched.timings_by_model["mnv3"]["infer"] > 0
    batched.close()
    alone.close()


def test_outputs_without_a_batch_axis_run_one_frame_a_call(classifier, monkeypatch):
    """A decoder whose outputs are one image's detections (R-CNN's [N, 4]) cannot be sliced per item: its
    model runs one frame a call even with a dynamic batch."""
    monkeypatch.setitem(DECODERS, "topk-one-image", type("OneImage", (TopKDecoder,), {"batched": False}))
    models = RunnerGraph([replace(classifier, decoder="topk-one-image")], "onnxruntime", threads=1, batch=4)
    assert models.batch == models.runners[0].batch == 1
    models.close()


class Events:
    critical = True

    def __init__(self):
        self.results = {}

    def write(self, item):
        self.results[(item.frame.stream, item.frame.index)] = item.results["mnv3"]

    def close(self):
        pass


def run_two_streams(classifier, folders, batch: int) -> tuple[Events, dict]:
    """The streams through the pipeline, with a model slower than the decoders (the "slow" test backend:
    ONNX Runtime plus a sleep per call), so that both streams have a frame waiting at nearly every take."""
    sink = Events()
    models = RunnerGraph([classifier], "slow", threads=1, batch=batch)
    specs = [SourceSpec(str(folder), source_id=i, name=folder.name) for i, folder in enumerate(folders)]
    pipeline = Pipeline(specs, [models], [sink])
    pipeline.run()
    models.close()
    return sink, pipeline.summary()


@pytest.fixture(scope="module")
def folders(frames, tmp_path_factory):
    """The two streams as image folders: recorded sources, read losslessly."""
    made = []
    for n, images in enumerate(frames):
        made.append(tmp_path_factory.mktemp("streams") / f"stream{n}")
        made[-1].mkdir()
        for i, image in enumerate(images):
            cv2.imwrite(str(made[-1] / f"{i:03d}.png"), image)
    return made


def test_pipeline_batches_the_streams_latest_frames(classifier, folders):
    batched, summary = run_two_streams(classifier, folders, batch=2)
    alone, summary_alone = run_two_streams(classifier, folders, batch=1)
    assert batched.results.keys() == alone.results.keys() and len(batched.results) == 12
    for key, result in batched.results.items():
        assert_same_classes(result, alone.results[key])
    calls = {int(size): count for size, count in summary["batch"]["calls"].items()}
    assert set(calls) <= {1, 2} and sum(size * count for size, count in calls.items()) == 12
    assert sum(calls.values()) < 12 and summary["batch"]["mean"] > 1  # batching happened
    assert summary["batch"]["size"] == 2 and summary["frames"] == 12 and summary["dropped"] == 0
    assert summary_alone["batch"] == {"size": 1, "mean": 1.0, "calls": {"1": 12}}
    assert {s: v["frames"] for s, v in summary["streams"].items()} == {"stream0": 6, "stream1": 6}


def test_daemon_batches_its_sources_by_default(classifier, folders, tmp_path):
    sources = [SourceConfig(url=str(folder), realtime=False) for folder in folders]
    daemon = Daemon(DaemonConfig(sources=sources, bundles=[str(classifier.root)], out=str(tmp_path / "out"),
                           backend="slow", workers=1, video=False))  # slower than decoding: both wait
    assert daemon.pipeline.batch == 2  # no batch in the config: one frame per source
    assert daemon.run() == 0
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["frames"] == 12 and summary["batch"]["size"] == 2 and summary["batch"]["mean"] > 1
    metrics = generate_latest(registry_for(daemon.pipeline)).decode()
    calls = {s.labels["batch"]: s.value for family in text_string_to_metric_families(metrics)
             for s in family.samples if s.name == "edge_inference_calls_total"}
    assert calls == {size: float(count) for size, count in summary["batch"]["calls"].items()}


def test_config_batch_is_checked(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("sources: [{url: a.mp4}, {url: b.mp4}]\nbundles: [b]\nbatch: 2\n")
    assert load_config(path).batch == 2
    path.write_text("sources: [{url: a.mp4}]\nbundles: [b]\n\nbatch: 0\n")
    with pytest.raises(UsageError, match=r"edge.yaml:4: batch: must be at least 1, got 0"):
        load_config(path)


def test_run_batch_option_is_checked(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--source", "a.mp4", "--bundle", "b", "--batch", "0"])
    assert exited.value.code == 2 and "--batch: must be at least 1, got 0" in capsys.readouterr().err

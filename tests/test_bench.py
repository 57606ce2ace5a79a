"""``edge bench`` on a few seconds of real footage: the JSON, the Markdown and the PNG charts of the report folder,
the naive-loop ratio, warm-up left out of what is measured; without matplotlib, no charts and a line saying why."""

from __future__ import annotations

import json
import sys

import cv2
import pytest

from edge.bench.measure import Recorder, TimedAnnotate
from edge.bench.plan import BackendChoice, backend_choices, forget, tensorrt_engines
from edge.bench.report import CHARTS_NEED, write_report
from edge.bench.run import STAGES, BenchConfig, bench
from edge.cli import main

VIDEO = "one-by-one-person-detection.mp4"  # a sample name: edge bench takes it from the assets


@pytest.fixture(scope="module")
def benched(yolox_bundle, assets):
    """12 frames after 2 of warm-up, one round, a sweep of 1 worker × 1 and 2 threads."""
    return bench(BenchConfig(bundles=[str(yolox_bundle.root)], source=VIDEO, frames=12, warmup=2, repeat=1,
                             workers=[1], threads=[1, 2]))


def test_the_document_says_what_ran_and_the_ratio(benched, yolox_bundle, assets):
    doc, _ = benched
    assert doc["source"]["uri"] == str(assets / "videos" / VIDEO)
    assert (doc["source"]["width"], doc["source"]["height"], doc["source"]["frames"]) == (768, 432, 12)
    model = json.loads((yolox_bundle.root / "bundle.json").read_text())["files"]["model"]["sha256"]
    assert doc["bundles"]["yolox_nano"]["files"]["model"] == model
    (run,) = doc["runs"]
    assert (run["backend"], run["precision"]) == ("onnxruntime", "fp32")
    assert run["ratio"] > 0 and len(run["ratios"]) == 1
    assert run["ratio"] == pytest.approx(run["pipeline"]["fps"][0] / run["naive"]["fps"][0], rel=1e-2)
    assert list(run["pipeline"]["latency_ms"]) == list(STAGES)  # decode … sinks, end to end
    assert all(v["p50"] <= v["p90"] <= v["p99"] for v in run["pipeline"]["latency_ms"].values())
    per_bundle = run["pipeline"]["per_bundle_latency_ms"]["yolox_nano"]
    assert {"preprocess", "infer", "postprocess", "total"} <= set(per_bundle)
    assert [(p["workers"], p["threads"]) for p in run["sweep"]] == [(1, 1), (1, 2)]
    assert run["best"] in run["sweep"] and len(run["fps_over_time"]["pipeline"]) >= 1
    assert "tensorrt" in doc["skipped"]  # no TensorRT here: said, not measured


def test_report_folder_with_charts(benched, tmp_path):
    doc, charted = benched
    charts, note = write_report(doc, charted, tmp_path / "bench")
    assert note is None and len(charts) >= 3
    for chart in charts:
        image = cv2.imread(str(chart))
        assert image is not None and image.shape[1] >= 400 and image.shape[0] >= 200, chart
        assert image.std() > 10  # a drawing, not a blank canvas
    written = json.loads((tmp_path / "bench/bench.json").read_text())
    assert written["charts"] == [c.name for c in charts] and written["runs"][0]["ratio"] == doc["runs"][0]["ratio"]
    markdown = (tmp_path / "bench/report.md").read_text()
    assert all(f"]({c.name})" in markdown for c in charts)
    assert f"**{doc['runs'][0]['ratio']:.2f}×**" in markdown and "| infer |" in markdown


def test_without_matplotlib_the_report_says_so(benched, tmp_path, monkeypatch):
    doc, charted = benched
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib… raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    charts, note = write_report(doc, charted, tmp_path / "bench")
    assert charts == [] and note == CHARTS_NEED
    assert not list((tmp_path / "bench").glob("*.png"))
    assert CHARTS_NEED in (tmp_path / "bench/report.md").read_text()
    assert json.loads((tmp_path / "bench/bench.json").read_text())["note"] == CHARTS_NEED


def test_cli_json_with_a_sample_bundle_name(assets, tmp_path, monkeypatch, capsys):
    """``--bundle yolox_nano`` builds the sample into the cache once; ``--json`` prints one document."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["bench", "--bundle", "yolox_nano", "--source", VIDEO, "--frames", "4", "--warmup", "1",
                 "--repeat", "1", "--workers", "1", "--threads", "1", "--no-video", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bundles"]["yolox_nano"]["path"] == str(tmp_path / "cache/edge/bundles/yolox_nano")
    assert doc["runs"][0]["sweep"][0]["workers"] == 1 and doc["sinks"] == ["events"]
    assert main(["bench", "--bundle", "yolo", "--source", VIDEO]) == 2
    assert "--bundle: 'yolo' is neither a bundle folder nor a sample bundle" in capsys.readouterr().err
    assert main(["bench", "--bundle", "yolox_nano", "--source", "missing.mp4"]) == 3


class Item:
    """What a sink needs of a FrameResult here: nothing (the recorder's inner sinks are none)."""


def test_warm_up_is_not_measured_and_the_run_stops_after_the_frames():
    stops = []
    recorder = Recorder([], TimedAnnotate(lambda image, results: image), warmup=3, frames=4)
    recorder.stop = lambda: stops.append(recorder.count)
    measured_from, done_at = [], []
    recorder.on_measure = lambda: measured_from.append(recorder.count)
    recorder.on_done = lambda: done_at.append(recorder.count)
    for _ in range(9):  # frames in flight still arrive after the stop
        recorder.write(Item())
    measured = recorder.measured()
    assert measured.frames == 4 and len(measured.delivered_s) == 4 and measured.delivered_s[0] > 0
    assert stops == [7] and measured_from == [4] and done_at == [8]
    assert recorder.times.stages["sinks"].count == 4
    with pytest.raises(ValueError):
        Recorder([], TimedAnnotate(lambda image, results: image), warmup=0, frames=1)


def test_tensorrt_configurations_need_an_engine_of_every_bundle(monkeypatch, yolox_bundle, espnet_bundle):
    from pathlib import Path
    from types import SimpleNamespace

    import edge.backends.select as select

    def engine(precision, created, problems=()):
        tag = SimpleNamespace(options=SimpleNamespace(precision=precision), created=created)
        return select.Candidate(Path(f"{precision}-{created}.engine"), tag, tuple(problems))

    found = {"yolox_nano": [engine("fp16", "1"), engine("int8", "2"), engine("fp32", "3", ["built for sm 7.2"])],
             "espnetv2_voc": [engine("fp16", "4")]}
    monkeypatch.setattr(select, "gather_facts", lambda bundle: (None, found[bundle.name]))
    engines, why = tensorrt_engines([yolox_bundle, espnet_bundle])
    assert why is None and list(engines) == ["fp16"]
    assert engines["fp16"] == {"yolox_nano": Path("fp16-1.engine"), "espnetv2_voc": Path("fp16-4.engine")}
    choices, skipped = backend_choices([yolox_bundle, espnet_bundle], "auto")
    assert choices == [BackendChoice("onnxruntime", "onnxruntime"), BackendChoice("tensorrt-fp16", "tensorrt", "fp16")]
    from edge.backends import EXTRA_BACKENDS

    assert "tensorrt-fp16" in EXTRA_BACKENDS and not skipped
    forget(choices)
    assert "tensorrt-fp16" not in EXTRA_BACKENDS
    found["espnetv2_voc"] = [engine("fp16", "5", ["TensorRT 10.3 built it, 8.6 runs here"])]
    assert tensorrt_engines([yolox_bundle, espnet_bundle])[1].startswith("no TensorRT engine of espnetv2_voc fits")

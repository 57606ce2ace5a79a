"""What the daemon shows: the metrics this issue added (bundle label, build info, detections per label, queue
depth, process metrics) and the live page's document, after a real run."""

from __future__ import annotations

import json

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import edge
from edge.config import DaemonConfig, HttpConfig, SourceConfig
from edge.daemon import Daemon
from edge.live import live_status
from edge.telemetry import registry_for
from tests.helpers.servers import free_port


def test_metrics_and_live_document_after_a_run(yolox_bundle, assets, tmp_path):
    source = SourceConfig(url=str(assets / "videos/face-demographics-walking.gif"), realtime=False)
    daemon = Daemon(DaemonConfig(sources=[source], bundles=[str(yolox_bundle.root)], out=str(tmp_path / "out"),
                                 video=False, http=HttpConfig(port=free_port())))
    assert daemon.run() == 0
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    samples = [s for family in text_string_to_metric_families(
        generate_latest(registry_for(daemon.pipeline, daemon.labels)).decode()) for s in family.samples]

    def value(name, **labels):
        (found,) = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return found

    assert value("edge_build_info", version=edge.__version__) == 1.0
    assert value("edge_bundle_latency_seconds_count", bundle="yolox_nano", stage="infer") == summary["frames"] == 35
    assert value("edge_detections_total", bundle="yolox_nano", label="person") == \
        summary["detections_per_label"]["person"] > 0
    assert value("edge_queue_depth", stream="face-demographics-walking") == 0.0  # all taken by the end
    assert value("process_cpu_seconds_total") > 0 and value("process_resident_memory_bytes") > 0

    doc = live_status(daemon.pipeline, daemon.history, daemon.latest, daemon.pipeline.started)
    assert doc["version"] == edge.__version__ and doc["backend"] == "onnxruntime"
    assert doc["bundles"] == [{"name": "yolox_nano", "task": "detection", "backend": "onnxruntime",
                               "precision": "fp32"}]
    stream = doc["streams"]["face-demographics-walking"]
    assert stream["frames"] == 35 and stream["size"] == (480, 270) and stream["queue"] == 0
    assert len(stream["history"]["fps"]) == len(doc["history_times"]) >= 1
    assert stream["latest"]["frame"] == 34 and all(d["label"] and 0 < d["score"] <= 1
                                                   for d in stream["latest"]["results"]["yolox_nano"])

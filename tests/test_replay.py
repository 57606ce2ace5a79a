"""Replay writes exactly what the contract says, for every source kind, every frame once and in order."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import time
from datetime import datetime

import cv2
import numpy as np
import pytest

import edge
from edge.cli import main
from tests.helpers.runs import write_frames

SUMMARY_KEYS = {"frames", "dropped", "wall_s", "fps", "backend", "precision", "latency_ms"}
STAGES = {"decode", "preprocess", "infer", "postprocess", "end_to_end"}


@pytest.fixture(scope="module")
def image_folder(assets, tmp_path_factory):
    """Six real frames of the highway clip as PNGs (written by the test, not committed)."""
    return write_frames(assets / "videos/bgslibrary_highway_traffic_320x240.avi", tmp_path_factory.mktemp("frames"),
                        range(6), "frame_{:03d}.png")


def check_outputs(out, frames, stream, width, height, tracked=True):
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["frame"] for e in events] == list(range(frames))
    for event in events:
        assert set(event) == {"stream", "frame", "pts", "time", "size", "results"}
        assert event["stream"] == stream and isinstance(event["pts"], float)
        assert event["size"] == [width, height] and abs(event["time"] - time.time()) < 3600
        (result,) = event["results"].values()
        for det in result["detections"]:
            assert set(det) == {"label", "class_id", "score", "box"} | ({"track_id"} if tracked else set())
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert 0 <= det["score"] <= 1 and isinstance(det["class_id"], int)
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["frames"] == frames and summary["dropped"] == 0
    assert summary["backend"] == "onnxruntime" and summary["precision"] == "fp32"
    assert set(summary["latency_ms"]) == STAGES
    assert all(v["p50"] <= v["p99"] for v in summary["latency_ms"].values())
    video = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    ok, first = video.read()
    assert ok and first.shape == (height, width, 3)
    return events


def test_image_folder(yolox_bundle, image_folder, tmp_path):
    assert main(["replay", str(image_folder), "--bundle", str(yolox_bundle.root), "--out", str(tmp_path)]) == 0
    events = check_outputs(tmp_path, 6, image_folder.name, 320, 240)
    assert [e["pts"] for e in events] == pytest.approx([i / 30 for i in range(6)], abs=1e-6)
    assert all(any(d["label"] == "car" for d in e["results"]["yolox_nano"]["detections"]) for e in events)


def test_summary_identifies_the_run_and_counts_tracks(yolox_bundle, image_folder, tmp_path):
    """The ``run`` block names edge, the host, the backend, the bundle by its bundle.json's sha256 and the source's
    size and length; ``labels`` counts each car once with tracking on, and every detection without it."""
    for tracking in ("--tracking", "--no-tracking"):
        out = tmp_path / tracking
        assert main(["replay", str(image_folder), "--bundle", str(yolox_bundle.root), "--out", str(out), "--no-video",
                     tracking]) == 0
        summary = json.loads((out / "summary.json").read_text())
        run = summary["run"]
        assert run["edge_version"] == edge.__version__ and run["host"] == socket.gethostname()
        assert run["backend"] == "onnxruntime" and run["gpus"] == []
        assert datetime.fromisoformat(run["started"]).tzinfo is not None
        bundle = run["bundles"]["yolox_nano"]
        assert bundle["sha256"] == hashlib.sha256((yolox_bundle.root / "bundle.json").read_bytes()).hexdigest()
        assert bundle["thresholds"] == {"score": 0.3, "iou": 0.45, "max_detections": 300}
        assert run["sources"][image_folder.name] == {"uri": str(image_folder), "width": 320, "height": 240,
                                                     "fps": 30.0, "length": 6, "duration_s": 0.2}
        cars = summary["detections_per_label"]["car"]
        assert cars >= 6
        if tracking == "--tracking":
            assert summary["labels_counted"] == "tracks" and 1 <= summary["labels"]["car"] < cars
        else:
            assert summary["labels_counted"] == "detections" and summary["labels"]["car"] == cars


def test_glob_in_name_order(yolox_bundle, image_folder, tmp_path):
    shutil.copy(image_folder / "frame_000.png", image_folder.parent / "stray.png")  # outside the glob
    pattern = str(image_folder / "frame_00[0-3].png")
    assert main(["replay", pattern, "--bundle", str(yolox_bundle.root), "--out", str(tmp_path), "--no-tracking"]) == 0
    check_outputs(tmp_path, 4, image_folder.name, 320, 240, tracked=False)


def test_video_file_frames_and_timestamps(yolox_bundle, assets, tmp_path):
    video = assets / "videos/face-demographics-walking.gif"
    assert main(["replay", str(video), "--bundle", str(yolox_bundle.root), "--out", str(tmp_path)]) == 0
    events = check_outputs(tmp_path, 35, "face-demographics-walking", 480, 270)
    pts = np.array([e["pts"] for e in events])
    assert pts[0] == 0 and (np.diff(pts) > 0).all()  # the container's timestamps, increasing


def test_realtime_paces_at_the_file_rate(yolox_bundle, assets, tmp_path):
    """35 GIF frames at 12.5 fps take at least 2.7 s when paced; the same replay unpaced takes far less."""
    video = str(assets / "videos/face-demographics-walking.gif")
    assert main(["replay", video, "--bundle", str(yolox_bundle.root), "--out", str(tmp_path), "--no-video",
                 "--realtime"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["wall_s"] >= 34 / 12.5 - 0.05

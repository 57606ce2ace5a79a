"""``edge demo`` as a new user runs it: the console entry point, real model, real footage, contract outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def person_runs(events, min_score=0.5, min_length=10):
    """Stretches of ≥ ``min_length`` consecutive frames with a person: people walking through the room."""
    seen = [any(d["label"] == "person" and d["score"] >= min_score for d in e["results"]["yolox_nano"]["detections"])
            for e in events]
    runs, start = [], None
    for i, flag in enumerate([*seen, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= min_length:
                runs.append((start, i - start))
            start = None
    return np.mean(seen), runs


@pytest.mark.slow
def test_demo_end_to_end(assets, tmp_path):
    """The demo is the issue's three-bundle replay: YOLOX-nano, ESPNetv2 and MoveNet top-down on the sample
    video, every frame decoded once and all three results in its one event line; ESPNetv2 inferred on every
    third frame, its map carried in between, detection and pose on every frame."""
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "edge", "demo", "--out", str(out), "--assets", str(assets)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    assert str(out / "events.jsonl") in done.stdout and "person" in done.stdout
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["frame"] for e in events] == list(range(1394))
    assert all(list(e["results"]) == ["yolox_nano", "espnetv2_voc", "movenet_topdown"] for e in events)
    carried = [[name for name, result in e["results"].items() if result.get("inferred", True) is False]
               for e in events]
    assert carried == [[] if i % 3 == 0 else ["espnetv2_voc"] for i in range(1394)]
    fraction, runs = person_runs(events)
    assert 0.3 < fraction < 0.95  # people on the frames where they walk through, not everywhere
    assert len(runs) >= 5  # one at a time: several separate walk-throughs
    with_person = [e for e in events if any(d["label"] == "person" and d["score"] >= 0.5
                                            for d in e["results"]["yolox_nano"]["detections"])]
    segmented = [e["results"]["espnetv2_voc"]["class_fractions"].get("person", 0) > 0.005 for e in with_person]
    posed = [len(e["results"]["movenet_topdown"]["poses"]) >= 1 for e in with_person]
    assert np.mean(segmented) > 0.8 and np.mean(posed) > 0.8  # the person is segmented and posed too
    empty = [e for e in events if not e["results"]["yolox_nano"]["detections"]]
    assert empty and all(e["results"]["movenet_topdown"]["poses"] == [] for e in empty)  # no person, no pose
    video = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 1394
    assert (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (768, 432)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == summary["decoded_frames"] == 1394  # decoded once, counted by the source
    assert summary["dropped"] == 0 and summary["fps"] > 0
    per_bundle = summary["per_bundle"]
    assert list(per_bundle) == ["yolox_nano", "espnetv2_voc", "movenet_topdown"]
    assert per_bundle["espnetv2_voc"]["inferred_frames"] == 465 and "inferred_frames" not in per_bundle["yolox_nano"]
    # No speed comparison here (tests never assert on time): with parallel workers the combined rate can
    # exceed what one bundle's own stage times allow alone. Only that each bundle was timed on every frame.
    assert all(stats["fps"] > 0 and {"preprocess", "infer", "postprocess", "total"} <= set(stats["latency_ms"])
               for stats in per_bundle.values())
    assert "per bundle, alone" in done.stdout


def test_demo_without_assets_says_how_to_point_at_them(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edge", "demo", "--out", str(tmp_path), "--assets",
                           str(tmp_path / "missing")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "EDGE_ASSETS" in lines[0] and "--assets" in lines[0]

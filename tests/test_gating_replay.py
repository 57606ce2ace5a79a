"""Inference only when needed, replayed on real footage: ``--interval`` runs a bundle on every N-th frame and the
events say which frames carry an earlier result; motion gating skips a still stretch almost entirely and
still infers every frame with people."""

from __future__ import annotations

import json
import shutil

import cv2
import pytest

from edge.cli import main
from tests.helpers.runs import write_frames


def events_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def persons(event: dict) -> int:
    return sum(d["label"] == "person" for d in event["results"]["yolox_nano"]["detections"])


@pytest.fixture(scope="module")
def walk_in(assets, tmp_path_factory):
    """Frames 60 to 74 of the person video, as an image folder: someone walks in."""
    return write_frames(assets / "videos/one-by-one-person-detection.mp4", tmp_path_factory.mktemp("walk_in"),
                        range(60, 75), "{:04d}.jpg")


def test_interval_runs_segmentation_on_every_third_frame_and_carries_its_map(yolox_bundle, espnet_bundle,
                                                                             movenet_topdown_bundle, walk_in,
                                                                             tmp_path):
    assert main(["replay", str(walk_in), "--bundle", str(yolox_bundle.root), "--bundle", str(espnet_bundle.root),
                 "--bundle", str(movenet_topdown_bundle.root), "--interval", "espnetv2_voc=3", "--out",
                 str(tmp_path), "--no-video"]) == 0
    events = events_of(tmp_path)
    for event in events:
        results = event["results"]
        inferred = event["frame"] % 3 == 0
        assert results["espnetv2_voc"].get("inferred", True) is inferred
        assert "inferred" not in results["yolox_nano"] and "inferred" not in results["movenet_topdown"]
        if not inferred:  # the map of the last inferred frame
            last = events[event["frame"] - event["frame"] % 3]["results"]["espnetv2_voc"]
            assert results["espnetv2_voc"]["class_fractions"] == last["class_fractions"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["per_bundle"]["espnetv2_voc"]["inferred_frames"] == 5
    assert summary["per_bundle"]["espnetv2_voc"]["skipped_frames"] == {"interval": 10}


def test_interval_on_the_detector_carries_tracked_boxes(yolox_bundle, movenet_topdown_bundle, walk_in, tmp_path):
    """Between inferred frames the tracker predicts the boxes (same ids); pose, which needs the detector, runs only
    on the detector's frames."""
    assert main(["replay", str(walk_in), "--bundle", str(yolox_bundle.root), "--bundle",
                 str(movenet_topdown_bundle.root), "--interval", "yolox_nano=2", "--out", str(tmp_path),
                 "--no-video"]) == 0
    events = events_of(tmp_path)
    tracked = {e["frame"]: [d["track_id"] for d in e["results"]["yolox_nano"]["detections"]] for e in events}
    confirmed = min(frame for frame, ids in tracked.items() if any(i > 0 for i in ids))
    assert confirmed <= 10
    for event in events:
        results = event["results"]
        carried = event["frame"] % 2 == 1
        assert results["yolox_nano"].get("inferred", True) is not carried
        assert results["movenet_topdown"].get("inferred", True) is not carried
        if carried and event["frame"] > confirmed:  # the person's box, moved on by the tracker, under its id
            assert tracked[event["frame"]] and set(tracked[event["frame"]]) <= set(tracked[event["frame"] - 1])


@pytest.fixture(scope="module")
def still_then_walk_in(assets, tmp_path_factory):
    """A still stretch (100 copies of one empty frame of the person video), then frames 40 to 239 of the video:
    a person walks to the table (from frame 61), stays and leaves (about 195); the room is empty after."""
    folder = tmp_path_factory.mktemp("still_then_walk_in")
    capture = cv2.VideoCapture(str(assets / "videos/one-by-one-person-detection.mp4"))
    for index in range(240):
        ok, image = capture.read()
        assert ok
        if index == 0:
            cv2.imwrite(str(folder / "0000.jpg"), image)
            for copy in range(1, 100):
                shutil.copyfile(folder / "0000.jpg", folder / f"{copy:04d}.jpg")
        if index >= 40:
            cv2.imwrite(str(folder / f"{index + 60:04d}.jpg"), image)
    return folder


@pytest.mark.slow
def test_motion_gating_skips_the_still_stretch_and_infers_every_frame_with_people(yolox_bundle, still_then_walk_in,
                                                                                 tmp_path):
    runs = {}
    for name, flags in (("all", []), ("gated", ["--motion"])):
        assert main(["replay", str(still_then_walk_in), "--bundle", str(yolox_bundle.root), "--out",
                     str(tmp_path / name), "--no-video", *flags]) == 0
        runs[name] = events_of(tmp_path / name)
    every, gated = runs["all"], runs["gated"]
    inferred = ["inferred" not in e["results"]["yolox_nano"] for e in gated]
    assert sum(inferred[:100]) < 10  # the still stretch: the first frame only
    with_people = [i for i, e in enumerate(every) if persons(e)]
    assert len(with_people) > 100 and all(inferred[i] for i in with_people)
    recall = sum(1 for i in with_people if persons(gated[i])) / len(with_people)
    assert recall >= 0.98
    summary = json.loads((tmp_path / "gated" / "summary.json").read_text())
    assert summary["per_bundle"]["yolox_nano"]["skipped_frames"] == {"motion": inferred.count(False)}


def test_the_daemon_reports_skipped_frames_and_zone_counters(yolox_bundle, walk_in, tmp_path):
    """``edge run`` with an interval and analytics inline in its config: Prometheus counts the skipped frames,
    /status.json gives the zone with its points and counters, the summary its totals."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from edge.config import load_config
    from edge.daemon import Daemon
    from edge.telemetry import registry_for, status

    config = tmp_path / "edge.yaml"
    config.write_text(f"""\
sources: [{{url: {walk_in}, realtime: false, name: hall}}]
bundles: [{yolox_bundle.root}]
out: {tmp_path / 'out'}
video: false
interval: {{yolox_nano: 2}}
analytics:
  zones:
    - {{name: floor, points: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], classes: [person]}}
""")
    daemon = Daemon(load_config(config))
    assert daemon.run() == 0
    metrics = generate_latest(registry_for(daemon.pipeline)).decode()
    skipped = {(s.labels["bundle"], s.labels["reason"]): s.value for family in text_string_to_metric_families(metrics)
               for s in family.samples if s.name == "edge_inference_skipped_total"}
    assert skipped == {("yolox_nano", "interval"): 7.0}  # frames 1, 3, … 13 of 15
    zone = status(daemon.pipeline)["analytics"]["hall"]["zones"]["floor"]
    assert zone["points"] == [[0, 0.5], [1, 0.5], [1, 1], [0, 1]] and zone["enter"] == {"person": 1}
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["analytics"]["hall"]["zones"]["floor"]["enter"] == {"person": 1}

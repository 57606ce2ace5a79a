"""``edge export``: a real replay's events as COCO results (loaded by pycocotools), MOT Challenge rows and CSV;
results as supervision.Detections."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edge.cli import main
from edge.export import COCO80_TO_91
from edge.export.coco import COCO80, coco_category_ids
from edge.export.to_supervision import supervision_fields, to_supervision
from edge.results import Detections

WALKING = "videos/face-demographics-walking.gif"  # 35 frames, 480 × 270, people walking


@pytest.fixture(scope="module")
def replayed(yolox_bundle, assets, tmp_path_factory):
    """The events of a tracked replay of the walking clip, and the events as read back."""
    out = tmp_path_factory.mktemp("walking")
    assert main(["replay", str(assets / WALKING), "--bundle", str(yolox_bundle.root), "--out", str(out),
                 "--no-video"]) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert sum(len(e["results"]["yolox_nano"]["detections"]) for e in events) > 20
    return out / "events.jsonl", events


def test_coco_results_load_in_pycocotools(replayed, tmp_path, capsys):
    coco_module = pytest.importorskip("pycocotools.coco")
    path, events = replayed
    out = tmp_path / "results.json"
    assert main(["export", str(path), "--format", "coco", "--out", str(out)]) == 0
    assert "category_id = COCO's 91 category ids" in capsys.readouterr().out
    ground_truth = coco_module.COCO()
    ground_truth.dataset = {"images": [{"id": e["frame"], "width": 480, "height": 270} for e in events],
                            "categories": [{"id": i, "name": n} for i, n in zip(COCO80_TO_91, COCO80)],
                            "annotations": []}
    ground_truth.createIndex()
    results = ground_truth.loadRes(str(out))
    expected = [d for e in events for d in e["results"]["yolox_nano"]["detections"]]
    assert len(results.getAnnIds()) == len(expected)
    first = results.loadAnns(results.getAnnIds(imgIds=[events[0]["frame"]]))[0]
    x1, y1, x2, y2 = events[0]["results"]["yolox_nano"]["detections"][0]["box"]
    assert first["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01)
    assert first["area"] == pytest.approx((x2 - x1) * (y2 - y1), rel=1e-3)
    people = results.getAnnIds(catIds=[1])  # COCO's id of person (class 0 of the 80)
    assert len(people) == sum(d["label"] == "person" for d in expected) > 0


def test_coco_ids_by_name():
    assert coco_category_ids(["person", "motorbike", "tvmonitor", "dining table"])  # Darknet's and COCO's names
    assert not coco_category_ids(["person", "face"])
    assert len(COCO80_TO_91) == 80 and COCO80_TO_91[-1] == 90 and 12 not in COCO80_TO_91


def test_mot_rows(replayed, tmp_path):
    path, events = replayed
    out = tmp_path / "walking.txt"
    assert main(["export", str(path), "--format", "mot", "--out", str(out)]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows and all(len(row) == 10 for row in rows)
    tracked = [(e["frame"] + 1, d) for e in events for d in e["results"]["yolox_nano"]["detections"]
               if d["track_id"] >= 0]
    assert len(rows) == len(tracked)
    for row, (frame, d) in zip(rows, tracked):
        assert int(row[0]) == frame >= 1 and int(row[1]) == d["track_id"] >= 1
        x1, y1, x2, y2 = d["box"]
        assert [float(v) for v in row[2:7]] == pytest.approx([x1, y1, x2 - x1, y2 - y1, d["score"]], abs=0.01)
        assert row[7:] == ["-1", "-1", "-1"]
    assert min(int(row[0]) for row in rows) >= 1 and max(int(row[0]) for row in rows) <= len(events)


def test_csv_rows(replayed, tmp_path):
    path, events = replayed
    assert main(["export", str(path), "--format", "csv"]) == 0
    with (path.parent / "events.csv").open() as f:
        rows = list(csv.DictReader(f))
    expected = [(e, d) for e in events for d in e["results"]["yolox_nano"]["detections"]]
    assert len(rows) == len(expected)
    row, (event, d) = rows[0], expected[0]
    assert (row["stream"], int(row["frame"]), row["label"], float(row["score"])) == (
        "face-demographics-walking", event["frame"], d["label"], d["score"])
    assert (int(row["width"]), int(row["height"])) == (480, 270) and float(row["time"]) == event["time"]


def test_bad_events_and_choices_are_one_line(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    event = {"stream": "a", "frame": 0, "pts": 0.0, "results": {"det": {"detections": []}, "seg": {"top": []}}}
    path.write_text(json.dumps(event) + "\n" + json.dumps({**event, "stream": "b"}) + "\n{oops\n")
    assert main(["export", str(path), "--format", "mot"]) == 3
    assert capsys.readouterr().err.strip() == f"edge: error: {path}:3: not a JSON event line (Expecting property " \
                                              "name enclosed in double quotes)"
    path.write_text(json.dumps(event) + "\n" + json.dumps({**event, "stream": "b"}) + "\n")
    assert main(["export", str(path), "--format", "mot"]) == 2
    assert "--stream: " in capsys.readouterr().err
    assert main(["export", str(path), "--format", "csv", "--bundle", "seg"]) == 2
    assert "no detections of 'seg'" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.jsonl"), "--format", "csv"]) == 3


def test_supervision_fields_have_its_shapes(replayed):
    _, events = replayed
    result = next(e for e in events if e["results"]["yolox_nano"]["detections"])["results"]["yolox_nano"]
    fields = supervision_fields(result)
    n = len(result["detections"])
    assert fields["xyxy"].shape == (n, 4) and fields["xyxy"].dtype == np.float32
    assert fields["confidence"].shape == (n,) and fields["class_id"].dtype == np.int64
    assert fields["tracker_id"].tolist() == [d["track_id"] for d in result["detections"]]
    assert fields["data"]["class_name"].tolist() == [d["label"] for d in result["detections"]]
    runtime = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.9], np.float32), np.array([2]))
    fields = supervision_fields(runtime, lambda c: ["a", "b", "car"][c])
    assert fields["data"]["class_name"].tolist() == ["car"] and fields["tracker_id"] is None


def test_to_supervision(replayed):
    supervision = pytest.importorskip("supervision")
    _, events = replayed
    result = next(e for e in events if len(e["results"]["yolox_nano"]["detections"]) > 1)["results"]["yolox_nano"]
    found = to_supervision(result)
    assert isinstance(found, supervision.Detections) and len(found) == len(result["detections"])
    people = found[found.class_id == 0]  # supervision's own filtering keeps the fields together
    assert list(people.data["class_name"]) == ["person"] * len(people)
    picture = supervision.BoxAnnotator().annotate(np.zeros((270, 480, 3), np.uint8), found)
    assert picture.any()

"""ByteTrack-style tracking: synthetic motion with known answers, then real footage."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.results import Detections
from edge.runner import Runner
from edge.tracker import ByteTracker


def dets(boxes, scores=None, classes=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    classes = np.zeros(len(boxes), np.int64) if classes is None else np.asarray(classes, np.int64)
    return Detections(boxes, scores, classes)


def box(x, y, w=40, h=80):
    return [x, y, x + w, y + h]


def test_crossing_tracks_keep_their_ids():
    """Two people walk through each other (left→right and right→left): constant velocity carries each id
    through the crossing, where their boxes overlap almost completely."""
    tracker = ByteTracker()
    ids = []
    for t in range(40):
        a, b = box(20 + 8 * t, 100), box(340 - 8 * t, 104)
        ids.append(tracker.update(dets([a, b])).track_ids.tolist())
    first = ids[0]
    assert len(set(first)) == 2 and -1 not in first
    assert all(frame == first for frame in ids), ids


def test_lost_and_found_again_within_the_buffer():
    tracker = ByteTracker()
    for t in range(10):
        (track,) = tracker.update(dets([box(10 + 5 * t, 50)])).track_ids
    for _ in range(8):  # occluded: no detection
        tracker.update(dets([]))
    (again,) = tracker.update(dets([box(10 + 5 * 18, 50)])).track_ids
    assert again == track
    for _ in range(40):  # gone for longer than the buffer: forgotten
        tracker.update(dets([]))
    assert len(tracker) == 0


def test_weak_detections_continue_tracks_but_do_not_start_them():
    tracker = ByteTracker()
    (track,) = tracker.update(dets([box(0, 0)])).track_ids
    (weak,) = tracker.update(dets([box(2, 0)], scores=[0.2])).track_ids
    assert weak == track  # second stage: a low score continues an existing track
    assert tracker.update(dets([box(300, 300)], scores=[0.2])).track_ids.tolist() == [-1]


def test_a_new_object_gets_an_id_on_its_second_sighting_and_classes_never_mix():
    tracker = ByteTracker()
    tracker.update(dets([box(0, 0)]))
    second = tracker.update(dets([box(0, 0), box(200, 0)])).track_ids
    assert second[0] > 0 and second[1] == -1  # a one-frame false positive uses no id
    third = tracker.update(dets([box(0, 0), box(200, 0)])).track_ids
    assert third[1] > 0 and third[1] != third[0]
    other = tracker.update(dets([box(0, 0)], classes=[2])).track_ids
    assert other[0] != third[0]  # same place, another class: not the same object


def test_highway_cars_keep_their_ids(yolox_bundle, assets):
    """On 90 frames of real traffic, a car seen in consecutive frames keeps its id almost always."""
    model = Runner(yolox_bundle, threads=2)
    tracker = ByteTracker()
    capture = cv2.VideoCapture(str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"))
    previous, kept, compared = None, 0, 0
    lengths: dict[int, int] = {}
    for _ in range(90):
        result = tracker.update(model(capture.read()[1]))
        cars = result.track_ids[(result.class_ids == 2) & (result.scores >= 0.5) & (result.track_ids > 0)]
        for track in cars.tolist():
            lengths[track] = lengths.get(track, 0) + 1
        if previous is not None:
            compared += len(set(cars.tolist()) | previous)
            kept += len(set(cars.tolist()) & previous)
        previous = set(cars.tolist())
    model.close()
    assert kept / compared >= 0.8, (kept, compared)
    assert np.median(list(lengths.values())) >= 15  # long tracks, not a new id every few frames


@pytest.mark.slow
def test_one_id_per_walk_through(yolox_bundle, assets, tmp_path):
    """People cross the room one at a time: each walk-through is (almost entirely) one track id. The first
    460 frames hold the first two walk-throughs (frames 63–192 and 228–443)."""
    capture = cv2.VideoCapture(str(assets / "videos/one-by-one-person-detection.mp4"))
    video = tmp_path / "two_walks.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (768, 432))
    for _ in range(460):
        writer.write(capture.read()[1])
    writer.release()
    assert main(["replay", str(video), "--bundle", str(yolox_bundle.root), "--out", str(tmp_path), "--no-video",
                 "--track"]) == 0
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    persons = [[d["track_id"] for d in e["results"]["yolox_nano"]["detections"]
                if d["label"] == "person" and d["score"] >= 0.5] for e in events]
    walks, current = [], []
    for ids in persons:
        if ids:
            current.extend(i for i in ids if i > 0)
        elif current:
            walks.append(current)
            current = []
    walks = [w for w in walks if len(w) >= 10]
    assert len(walks) == 2
    for walk in walks:
        most = max(set(walk), key=walk.count)
        assert walk.count(most) / len(walk) >= 0.8, walk
    assert len({max(set(w), key=w.count) for w in walks}) == len(walks)  # a new person, a new id

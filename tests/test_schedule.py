"""Inference only when needed: the motion detector on synthetic scenes, each frame's plan (interval, motion
gating and cropping, a bundle that needs another), the graph running a bundle on its planned frames (or a
frame's moving region) only, and the tracker carrying boxes over the frames (or the parts of one) a detector
skipped."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import Bundle, InputSpec, Needs, Thresholds
from edge.crops import region_box
from edge.decoders.nms import box_iou
from edge.errors import UsageError
from edge.motion import MotionDetector
from edge.results import Detections
from edge.schedule import InferenceSchedule, MotionGate, Skip
from edge.tracker import ByteTracker
from streams.base import Frame


def scene(square_at: tuple[int, int] | None = None, brightness: int = 90) -> np.ndarray:
    """A textured grey 320 × 240 frame, with a bright 30 × 30 square whose top left is ``square_at``."""
    image = np.full((240, 320, 3), brightness, np.uint8)
    image[::16, :] = brightness + 30
    if square_at is not None:
        x, y = square_at
        image[y:y + 30, x:x + 30] = 250
    return image


def test_a_still_scene_does_not_move_and_a_moving_square_does_where_it_is():
    detector = MotionDetector()
    assert detector(scene()).moving  # the first frame always moves: nothing to compare with yet
    assert not any(detector(scene()).moving for _ in range(20))
    motion = detector(scene((100, 60)))
    assert motion.moving and motion.area < 0.05
    x1, y1, x2, y2 = motion.box
    assert x1 <= 100 and y1 <= 60 and x2 >= 130 and y2 >= 90 and x2 - x1 < 60 and y2 - y1 < 60


def test_something_that_stops_stays_motion_for_a_while_and_leaves_no_ghost():
    detector = MotionDetector()
    for _ in range(10):
        detector(scene())
    still = [detector(scene((100, 60))).moving for _ in range(100)]
    assert all(still)  # the average learns moving pixels 50 times slower: a person who stops is still seen
    gone = [detector(scene()).moving for _ in range(3)]
    assert not gone[-1]  # where it stood, the average had kept the empty scene


def test_a_change_of_the_whole_picture_is_the_new_background():
    detector = MotionDetector()
    detector(scene())
    assert detector(scene(brightness=160)).moving
    assert not detector(scene(brightness=160)).moving


def bundle(name: str, needs: Needs | None = None) -> Bundle:
    return Bundle(Path(name), name, "detection", "yolox", InputSpec("x", (1, 3, 8, 8)), ["a"], Thresholds(), {}, {},
                  needs=needs or Needs())


def frame(index: int, image: np.ndarray | None = None, source: int = 0) -> Frame:
    return Frame(scene() if image is None else image, index, index / 10, "s", 0.0, 0.0, source)


def test_interval_runs_a_bundle_on_every_nth_frame_of_each_stream_and_its_dependants_with_it():
    schedule = InferenceSchedule([bundle("det"), bundle("seg"), bundle("pose", Needs(detector="det"))],
                                 {"det": 3, "pose": 2})
    plans = [schedule.plan(frame(i)) for i in range(7)]
    assert [sorted(p.run) for p in plans] == [["det", "pose", "seg"], ["seg"], ["seg"], ["det", "seg"], ["seg"],
                                              ["seg"], ["det", "pose", "seg"]]
    assert plans[1].skipped == {"det": Skip.INTERVAL, "pose": Skip.INTERVAL} and not plans[1].still
    assert sorted(schedule.plan(frame(0, source=1)).run) == ["det", "pose", "seg"]  # each stream counts its own


def test_interval_names_bundles_of_the_run():
    with pytest.raises(UsageError, match="--interval: no bundle named 'sge'"):
        InferenceSchedule([bundle("det"), bundle("seg")], {"sge": 2})
    with pytest.raises(UsageError, match="--motion-area"):
        MotionGate(min_area=0)


def test_motion_gating_skips_still_frames_and_refreshes_now_and_then():
    schedule = InferenceSchedule([bundle("det")], gate=MotionGate(refresh_s=5.0))
    plans = [schedule.plan(frame(i)) for i in range(120)]  # 12 s of a still scene at 10 fps
    assert [i for i, p in enumerate(plans) if p.run] == [0, 50, 100]
    assert plans[1].still and plans[1].skipped == {"det": Skip.MOTION}
    assert schedule.plan(frame(120, scene((100, 60)))).run == {"det"}


def test_the_graph_runs_each_bundle_on_its_planned_frames(yolox_bundle, espnet_bundle):
    from edge.graph import RunnerGraph

    graph = RunnerGraph([yolox_bundle, espnet_bundle], "onnxruntime", 1)
    try:
        images = [scene(), scene((50, 50))]
        results = graph.run(images, [{"yolox_nano"}, {"yolox_nano", "espnetv2_voc"}])
        assert [list(r) for r in results] == [["yolox_nano"], ["yolox_nano", "espnetv2_voc"]]
        assert graph.ran == {"yolox_nano": 2, "espnetv2_voc": 1}
        assert graph.run(images, [set(), set()]) == [{}, {}] and graph.timings["infer"] == 0
    finally:
        graph.close()


def boxes_at(x: float) -> Detections:
    return Detections(np.array([[x, 10, x + 20, 50]], np.float32), np.array([0.9], np.float32), np.zeros(1, np.int64))


def test_the_tracker_carries_boxes_over_skipped_frames():
    tracker = ByteTracker()
    for x in (0, 5, 10, 15, 20):
        track_id = tracker.update(boxes_at(x)).track_ids[0]
    moved = tracker.coast()
    assert moved.track_ids.tolist() == [track_id] and moved.scores.tolist() == pytest.approx([0.9])
    assert 21 < moved.boxes[0, 0] < 29  # about one step of 5 px on
    kept = tracker.coast(still=True)
    assert kept.boxes.tolist() == moved.boxes.tolist()
    assert tracker.update(boxes_at(30)).track_ids.tolist() == [track_id]  # found again after the skipped frames


def test_motion_cropping_plans_the_moving_region_unless_most_of_the_frame_moves():
    schedule = InferenceSchedule([bundle("det")], gate=MotionGate(crop=True))
    schedule.plan(frame(0))
    x1, y1, x2, y2 = schedule.plan(frame(1, scene((100, 60)))).region
    assert x1 <= 100 and y1 <= 60 and x2 >= 130 and y2 >= 90 and (x2 - x1) * (y2 - y1) < 0.1 * 320 * 240
    assert schedule.plan(frame(2, scene(brightness=160))).region is None  # the whole picture changed


def test_a_region_becomes_a_box_of_the_models_aspect_at_least_its_size_inside_the_frame():
    assert region_box((100, 100, 150, 140), (416, 416), (768, 432)).tolist() == [0, 0, 416, 416]
    assert region_box((600, 300, 760, 430), (416, 416), (768, 432)).tolist() == [352, 16, 768, 432]
    assert region_box((100, 50, 700, 350), (320, 160), (768, 432)).tolist() == [100, 50, 700, 350]


def test_the_tracker_holds_the_tracks_outside_a_cropped_region():
    tracker = ByteTracker()
    two = Detections(np.array([[0, 10, 20, 50], [200, 10, 220, 50]], np.float32), np.array([0.9, 0.9], np.float32),
                     np.zeros(2, np.int64))
    for _ in range(3):
        ids = tracker.update(two).track_ids.tolist()
    seen = tracker.update(boxes_at(2), region=(0, 0, 100, 100))  # the detector saw the left part only
    assert seen.track_ids.tolist() == ids and seen.boxes[1].tolist() == pytest.approx([200, 10, 220, 50], abs=1)
    assert tracker.update(boxes_at(4)).track_ids.tolist() == ids[:1]  # without a region, the other is missed


def test_the_graph_runs_a_detector_on_the_region_and_gives_frame_pixels(yolox_bundle, espnet_bundle, assets):
    from edge.graph import RunnerGraph

    capture = cv2.VideoCapture(str(assets / "videos/one-by-one-person-detection.mp4"))
    for _ in range(71):
        ok, image = capture.read()
    graph = RunnerGraph([yolox_bundle, espnet_bundle], "onnxruntime", 1)
    try:
        assert graph.croppable == {"yolox_nano"}  # a segmentation map must cover the whole frame
        whole, = graph.run([image])
        cropped, = graph.run([image], regions=[(200, 0, 768, 432)])
        person = whole["yolox_nano"].boxes[whole["yolox_nano"].class_ids == 0]
        found = cropped["yolox_nano"].boxes[cropped["yolox_nano"].class_ids == 0]
        assert len(person) == len(found) == 1 and box_iou(person, found)[0, 0] > 0.8
        assert cropped["espnetv2_voc"].class_map.shape == image.shape[:2]
    finally:
        graph.close()

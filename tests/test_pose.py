"""Pose: MoveNet on real footage, top-down on a detector's people, and crops that map points back exactly."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnxruntime
import pytest

from edge.bundle import InputSpec
from edge.cli import main
from edge.graph import RunnerGraph
from edge.pipeline.messages import to_events
from edge.preprocess import Preprocessor

NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 5, 6
# The int8 MoveNet's confidences depend on ONNX Runtime's int8 kernels: frames with at least 12 keypoints > 0.3
# were 97 % of the signing video from release 1.27 on and 71 % with 1.18 to 1.26 (measured with OpenCV 4.8 to 5.1;
# Python 3.10, JetPack 6's, has no ONNX Runtime after 1.23).
CONFIDENT_FRAMES = 0.9 if tuple(int(v) for v in onnxruntime.__version__.split(".")[:2]) >= (1, 27) else 0.7


def read_events(folder):
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


def test_movenet_on_the_signing_person(movenet_bundle, assets, tmp_path):
    video = assets / "videos/asl_again_person_upper_body.mkv"
    assert main(["replay", str(video), "--bundle", str(movenet_bundle.root), "--out", str(tmp_path),
                 "--no-video"]) == 0
    events = read_events(tmp_path)
    assert len(events) == 77
    poses = [e["results"]["movenet"]["poses"] for e in events]
    assert all(len(p) <= 1 and (not p or p[0]["box"] is None) for p in poses)  # single pose, whole frame
    keypoints = np.array([p[0]["keypoints"] if p else np.zeros((17, 3)) for p in poses])  # [frames, 17, 3]
    confident = (keypoints[..., 2] > 0.3).sum(axis=1)
    assert (confident >= 12).mean() >= CONFIDENT_FRAMES, confident  # MANIFEST: 13–14 keypoints > 0.3 on each frame
    nose_y, shoulders_y = keypoints[:, NOSE, 1], keypoints[:, [LEFT_SHOULDER, RIGHT_SHOULDER], 1]
    assert (nose_y[:, None] < shoulders_y).all(axis=1).mean() >= 0.9  # image y grows downwards
    seen = keypoints[keypoints[..., 2] > 0.3]
    inside = (seen[:, 0] >= 0) & (seen[:, 0] <= 640) & (seen[:, 1] >= 0) & (seen[:, 1] <= 480)
    assert inside.mean() > 0.95 and seen[:, 0].max() > 400  # frame pixels (not the model's 192 × 192)


def test_top_down_gives_one_pose_per_person(yolox_bundle, movenet_topdown_bundle, assets):
    image = cv2.imread(str(assets / "images/intel_frame_classroom_people.png"))
    models = RunnerGraph([yolox_bundle, movenet_topdown_bundle])
    results = models(image)
    events = to_events(results, models.labels)
    persons = [d for d in events["yolox_nano"]["detections"] if d["label"] == "person"]
    poses = events["movenet_topdown"]["poses"]
    assert len(persons) == 4 == len(poses)  # MANIFEST: 4 persons
    assert sorted(p["box"] for p in poses) == sorted(d["box"] for d in persons)
    for pose in poses:
        x1, y1, x2, y2 = pose["box"]
        points = np.array(pose["keypoints"])
        seen = points[points[:, 2] > 0.3]
        assert len(seen) >= 5
        margin = 0.5 * max(x2 - x1, y2 - y1)  # keypoints may leave the box a little, never the person's crop
        assert ((seen[:, 0] > x1 - margin) & (seen[:, 0] < x2 + margin) & (seen[:, 1] > y1 - margin)
                & (seen[:, 1] < y2 + margin)).all()
    assert models.timings_by_model["movenet_topdown"]["infer"] > 0


def test_top_down_without_people_gives_no_pose(yolox_bundle, movenet_topdown_bundle):
    models = RunnerGraph([yolox_bundle, movenet_topdown_bundle])
    results = models(np.full((240, 320, 3), 90, np.uint8))
    assert to_events(results, models.labels)["movenet_topdown"] == {"poses": []}


@pytest.mark.parametrize("box", [(100.0, 50.0, 164.0, 114.0), (20.5, 30.25, 420.5, 430.25),
                                 (-40.0, 300.0, 60.0, 400.0)], ids=["grows", "shrinks", "leaves-the-frame"])
def test_crops_map_points_back_to_the_frame(box):
    """A bright dot in the frame lands where the crop's Transform says, and maps back to where it was."""
    frame = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(frame, (40, 350) if box[0] < 0 else (140, 90) if box[2] < 200 else (220, 230), 6, (255, 255, 255), -1)
    dot = np.argwhere(frame[..., 0] > 0).mean(axis=0)[::-1] + 0.5  # (x, y) centre, continuous coordinates
    spec = InputSpec("x", (1, 3, 192, 192), resize="stretch", pad_value=0.0)
    crop = np.empty(spec.shape, np.float32)
    transform = Preprocessor(spec).crop(frame, np.array(box), crop)
    seen = np.argwhere(crop[0, 0] > 64).mean(axis=0)[::-1] + 0.5
    expected = dot * (transform.scale_x, transform.scale_y) + (transform.offset_x, transform.offset_y)
    np.testing.assert_allclose(seen, expected, atol=1.0)
    back = transform.points_to_source(seen[None].copy())[0]
    np.testing.assert_allclose(back, dot, atol=1.0 / min(transform.scale_x, 1) + 0.5)

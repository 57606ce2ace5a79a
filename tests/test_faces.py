"""Faces with landmarks: BlazeFace (anchors in the bundle) and MTCNN compiled from its PyTorch weights and
run as a cascade without torch. (UltraFace through the ``boxes`` decoder: test_detection_real.py.)"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.cli import main
from edge.decoders.nms import box_iou
from edge.runner import Runner

ASTRONAUT_FACE = np.array([[178, 62, 269, 173]], np.float32)  # MANIFEST: the one face in the astronaut image
MTCNN_POINTS = np.array([[205, 100], [245, 103], [224, 128], [202, 139], [244, 142]], np.float32)  # MANIFEST


@pytest.fixture(scope="module")
def astronaut(assets):
    return cv2.imread(str(assets / "images/skimage_astronaut_eileen_collins.png"))


def test_blazeface_finds_the_astronaut_with_six_landmarks(assets, astronaut, tmp_path):
    anchors = assets / "models/detection/blazeface_front_128x128_anchors.npy"
    (tmp_path / "labels.txt").write_text("face\n")
    assert main(["bundle", "create", "--onnx", str(assets / "models/detection/blazeface_front_128x128.onnx"),
                 "--labels", str(tmp_path / "labels.txt"),
                 "--task", "detection", "--decoder", "blazeface", "--name", "blazeface", "--color", "rgb",
                 "--resize", "square-pad", "--pad-value", "0", "--std", "255", "--score", "0.75", "--iou", "0.3",
                 "--file", f"anchors={anchors}", "--out", str(tmp_path / "blazeface")]) == 0
    faces = Runner(load_bundle(tmp_path / "blazeface"))(astronaut)
    assert len(faces) == 1 and faces.keypoints.shape == (1, 6, 3)
    assert box_iou(faces.boxes, ASTRONAUT_FACE)[0, 0] >= 0.6
    right_eye, left_eye, nose, mouth = faces.keypoints[0, :4, :2]  # MediaPipe's order, then the ears
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert right_eye[0] < nose[0] < left_eye[0]  # the subject's right eye is on the image's left


def test_mtcnn_networks_load_strictly_and_export_like_the_reference(assets, mtcnn_bundle):
    """The paper's architectures take facenet-pytorch's state_dicts key for key, and the exported ONNX files
    compute what the reference exports in the assets compute, at several batch and pyramid sizes."""
    import onnxruntime as ort

    assert mtcnn_bundle.provenance["weights"] == "checkpoint"
    assert set(mtcnn_bundle.files) == {"pnet", "rnet", "onet"}
    rng = np.random.default_rng(0)
    for net, shape in (("pnet", (2, 3, 37, 53)), ("pnet", (1, 3, 120, 90)), ("rnet", (5, 3, 24, 24)),
                       ("onet", (3, 3, 48, 48))):
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        ours = ort.InferenceSession(str(mtcnn_bundle.file(net)), providers=["CPUExecutionProvider"])
        reference = ort.InferenceSession(str(assets / f"models/detection/mtcnn_{net}.onnx"),
                                         providers=["CPUExecutionProvider"])
        for a, b in zip(ours.run(None, {"image": x}), reference.run(None, {"image": x})):
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_mtcnn_cascade_finds_the_astronaut_and_her_landmarks(mtcnn_bundle, astronaut):
    model = Runner(mtcnn_bundle)
    faces = model(astronaut)
    assert len(faces) == 1 and faces.scores[0] > 0.99
    assert box_iou(faces.boxes, ASTRONAUT_FACE)[0, 0] >= 0.6
    points = faces.keypoints[0, :, :2]
    eyes_y, nose_y, mouth_y = points[:2, 1].max(), points[2, 1], points[3:, 1].min()
    assert eyes_y < nose_y < mouth_y
    np.testing.assert_allclose(points, MTCNN_POINTS, atol=6)  # where the MANIFEST saw them
    assert model.timings["infer"] > 0 and model.timings["preprocess"] > 0


def test_mtcnn_through_replay_counts_faces(mtcnn_bundle, assets, tmp_path):
    image = assets / "images/ultraface_two_men_handshake.jpg"
    assert main(["replay", str(image), "--bundle", str(mtcnn_bundle.root), "--out", str(tmp_path)]) == 0
    (event,) = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    faces = event["results"]["mtcnn"]["detections"]
    assert len(faces) == 2 and all(f["label"] == "face" and len(f["keypoints"]) == 5 for f in faces)


def test_mtcnn_checkpoints_must_fit(assets, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    state = torch.load(assets / "models/detection/mtcnn_rnet.pt", weights_only=True)
    state["dense4.weight"] = state.pop("dense4.weight")[:, :100]
    torch.save(state, tmp_path / "rnet.pt")
    nets = {"pnet": assets / "models/detection/mtcnn_pnet.pt", "rnet": tmp_path / "rnet.pt",
            "onet": assets / "models/detection/mtcnn_onet.pt"}
    args = ["compile", "--model", "mtcnn", "--task", "detection", "--out", str(tmp_path / "out")]
    assert main([*args, *(f"--checkpoint={k}={v}" for k, v in nets.items())]) == 3
    assert "key 'dense4.weight' has shape [128, 100], the model expects [128, 576]" in capsys.readouterr().err
    assert main([*args, "--checkpoint", str(nets["pnet"])]) == 2
    assert "one checkpoint per network" in capsys.readouterr().err


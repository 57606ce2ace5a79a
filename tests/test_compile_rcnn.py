"""``edge compile`` for torchvision's Mask R-CNN and Keypoint R-CNN, exported with their post-processing: the
ONNX model and edge's decoders (masks pasted in NumPy) give what torchvision gives, and a semantic bundle
merges the instances into a panoptic map. Random weights (no hub), so nothing here is about what the models
find; ResNet-50 FPN on the CPU takes tens of seconds per image, hence ``slow``."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torchvision.models.detection.roi_heads import paste_masks_in_image  # noqa: E402

from calibration.measure import cpu_latencies_ms  # noqa: E402
from compile import torchvision_rcnn as rcnn  # noqa: E402
from compile.build import compile_model  # noqa: E402
from edge.bundle import Thresholds  # noqa: E402
from edge.bundle.create import create_bundle  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.decoders import DECODERS  # noqa: E402
from edge.decoders.nms import box_iou  # noqa: E402
from edge.geometry import Transform  # noqa: E402
from edge.preprocess import Preprocessor  # noqa: E402
from edge.runner import Runner  # noqa: E402

pytestmark = pytest.mark.slow
SIZE = (320, 320)
IDENTITY = Transform(1.0, 1.0, 0.0, 0.0, SIZE)


@pytest.fixture(scope="module")
def people(assets):
    return cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))


def model_input(bundle, frame) -> tuple[np.ndarray, Transform]:
    """The model input for a real frame, letterboxed as the runtime does. (Random pixels are no use here: on
    noise the RPN's scores tie by the hundred and any two implementations keep different proposals.)"""
    tensor = np.empty(bundle.input.shape, np.float32)
    return tensor, Preprocessor(bundle.input)(frame, tensor)


def onnx_outputs(model: Runner, tensor: np.ndarray) -> dict[str, np.ndarray]:
    model.input_buffer[...] = tensor
    return {name: array.copy() for name, array in model.backend.run(model.slot).items()}


def torchvision_forward(net, bundle, tensor: np.ndarray) -> dict[str, np.ndarray]:
    """The whole torchvision model (its own transform and post-processing) on the same pixels, 0..1 RGB."""
    mean = torch.tensor(bundle.input.mean).view(3, 1, 1) / 255
    std = torch.tensor(bundle.input.std).view(3, 1, 1) / 255
    with torch.no_grad():
        (result,) = net([torch.from_numpy(tensor[0]) * std + mean])
    return {name: value.numpy() for name, value in result.items()}


def matched(ours_boxes: np.ndarray, theirs_boxes: np.ndarray) -> np.ndarray:
    """For each of ours, the index of torchvision's detection with the same box (order may differ at ties)."""
    iou = box_iou(ours_boxes, theirs_boxes)
    assert (iou.max(axis=1) > 0.99).all(), iou.max(axis=1).min()
    return iou.argmax(axis=1)


def matched_to_torchvision(model: Runner, net, bundle, frame, spread: float):
    """The ONNX graph's outputs and torchvision's on the same input, paired box by box: (ours, theirs in our
    order, transform). Asserts the same detections (count, boxes, scores) and a spread of scores, so that the
    comparison is not between ties."""
    tensor, transform = model_input(bundle, frame)
    outputs = onnx_outputs(model, tensor)
    theirs = torchvision_forward(net, bundle, tensor)
    assert len(outputs["scores"]) == len(theirs["scores"]) > 5 and np.ptp(theirs["scores"]) > spread
    order = matched(outputs["boxes"], theirs["boxes"])
    np.testing.assert_allclose(outputs["scores"], theirs["scores"][order], atol=1e-4)
    return outputs, {name: value[order] for name, value in theirs.items()}, transform


def torchvision_in_frame(net, outputs: dict[str, np.ndarray], transform: Transform):
    """torchvision's own mapping of the graph's outputs back to the 640 × 480 frame, and the indices of the
    detections that stay out of the letterbox pad (edge clips those to the frame; torchvision does not)."""
    content = (round(480 * transform.scale_y), round(640 * transform.scale_x))
    (resized,) = net.transform.postprocess([{k: torch.from_numpy(v) for k, v in outputs.items()}], [content],
                                           [(480, 640)])
    return resized, np.flatnonzero(outputs["boxes"][:, 3] <= content[0])


def frame_mask(masks, i: int) -> np.ndarray:
    width, height = masks.frame_size
    full = np.zeros((height, width), bool)
    (x0, y0), patch = masks.origins[i].tolist(), masks.patches[i]
    full[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
    return full


def mask_ious(ours, theirs: np.ndarray) -> np.ndarray:
    """IoU of each of our pasted masks with torchvision's pasted mask thresholded at 0.5."""
    ious = []
    for i in range(len(ours.patches)):
        a, b = frame_mask(ours, i), theirs[i, 0] > 0.5
        union = (a | b).sum()
        ious.append((a & b).sum() / union if union else 1.0)  # a sliver of a box may have an empty mask
    return np.array(ious)


@pytest.fixture(scope="module")
def maskrcnn(tmp_path_factory):
    bundle = compile_model("maskrcnn_resnet50_fpn", tmp_path_factory.mktemp("maskrcnn") / "bundle",
                           task="segmentation", input_size=SIZE)
    return bundle, rcnn.rcnn_model("maskrcnn_resnet50_fpn", None, SIZE)


def test_maskrcnn_masks_match_pytorch(maskrcnn, people):
    bundle, net = maskrcnn
    assert bundle.decoder == "maskrcnn" and len(bundle.labels) == 91 and bundle.input.resize == "letterbox"
    model = Runner(bundle)
    everything = DECODERS["maskrcnn"](replace(bundle, thresholds=Thresholds(0.0, 0.5, 100)), model.backend.outputs)
    tensor, _ = model_input(bundle, people)
    ours = everything(onnx_outputs(model, tensor), IDENTITY)  # pasted by edge, into the model input's own frame
    theirs = torchvision_forward(net, bundle, tensor)  # pasted by torchvision
    assert len(ours) == len(theirs["scores"]) > 10
    assert np.ptp(theirs["scores"]) > 0.1  # random weights, yet scores with spread
    order = matched(ours.boxes, theirs["boxes"])
    np.testing.assert_allclose(ours.scores, theirs["scores"][order], atol=1e-4)
    np.testing.assert_array_equal(ours.class_ids, theirs["labels"][order])
    ious, areas = mask_ious(ours.masks, theirs["masks"][order]), ours.masks.areas()
    # Slivers of random boxes (a few dozen pixels) may gain or lose a pixel column where a box edge falls
    # within ONNX Runtime's and PyTorch's last-bit difference of an integer; every real mask agrees.
    assert (areas >= 100).sum() > 10
    assert (ious[areas >= 100] >= 0.95).all(), np.sort(ious[areas >= 100])[:5]
    assert (ious >= 0.8).all() and np.median(ious) > 0.99


def test_maskrcnn_masks_land_in_the_frame_as_torchvision_pastes_them(maskrcnn, people):
    """Boxes through the letterbox back to the 640 × 480 frame, masks pasted there: torchvision's own
    ``transform.postprocess`` on the same raw outputs gives the same instances."""
    bundle, net = maskrcnn
    model = Runner(bundle)
    tensor, transform = model_input(bundle, people)
    outputs = onnx_outputs(model, tensor)
    decoder = DECODERS["maskrcnn"](replace(bundle, thresholds=Thresholds(0.0, 0.5, 100)), model.backend.outputs)
    ours = decoder({k: v.copy() for k, v in outputs.items()}, transform)
    content = (round(480 * transform.scale_y), round(640 * transform.scale_x))  # the letterboxed frame
    raw = [{k: torch.from_numpy(v) for k, v in outputs.items()}]
    (theirs,) = net.transform.postprocess(raw, [content], [(480, 640)])
    # Random boxes may reach into the letterbox pad, below the frame: edge clips them to the frame,
    # torchvision (which pads no frame) does not. Those are compared where both agree: inside.
    inside = np.flatnonzero(outputs["boxes"][:, 3] <= content[0])
    assert len(inside) > 10
    np.testing.assert_allclose(ours.boxes[inside], theirs["boxes"].numpy()[inside], atol=0.02)
    ious = mask_ious(ours.masks, theirs["masks"].numpy())[inside]
    assert ious.min() >= 0.95 and np.median(ious) > 0.99, np.sort(ious)[:5]
    assert ours.masks.frame_size == (640, 480)


def test_paste_matches_torchvision_for_boxes_leaving_the_frame():
    from edge.decoders.rcnn import paste_masks

    rng = np.random.default_rng(0)
    masks = rng.uniform(0, 1, (6, 28, 28)).astype(np.float32)
    boxes = np.array([[-20, -10, 40, 30], [300, 200, 340, 260], [10.7, 20.2, 11.4, 20.9], [0, 0, 320, 240],
                      [150.5, 100.25, 210.75, 180.5], [310, 5, 400, 60]], np.float32)
    ours = paste_masks(masks, boxes, (320, 240))
    theirs = paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (240, 320)).numpy()
    for i in range(len(boxes)):  # the same pixels, but for OpenCV's and torch's last-bit rounding right at 0.5
        assert (frame_mask(ours, i) != (theirs[i, 0] > 0.5)).sum() <= 2, i
    assert ours.areas().sum() > 10_000


def test_panoptic_from_instances_and_a_semantic_map(maskrcnn, espnet_bundle, assets, tmp_path):
    """Random instances (so random labels) over ESPNetv2's real map of a corridor with a TV screen: one id per
    pixel, things where instances are, VOC's "tvmonitor" (COCO says "tv") as stuff, and VOC classes that are
    COCO things (person) left to the instances."""
    bundle, _ = maskrcnn
    instances = tmp_path / "instances"
    shutil.copytree(bundle.root, instances)
    doc = json.loads((instances / "bundle.json").read_text())
    doc["thresholds"]["score"] = 0.3  # random scores here are 0.2–0.45: a score of instances, not 100
    (instances / "bundle.json").write_text(json.dumps(doc))
    semantic = create_bundle(espnet_bundle.file("model"), tmp_path / "panoptic_voc", task="segmentation",
                             decoder="softmax", name="panoptic_voc", labels=espnet_bundle.labels, color="rgb",
                             resize="stretch", mean=espnet_bundle.input.mean, std=espnet_bundle.input.std,
                             needs={"instances": bundle.name})
    image = assets / "images/intel_frame_two_people_walking.png"
    assert main(["replay", str(image), "--bundle", str(instances), "--bundle", str(semantic.root),
                 "--out", str(tmp_path / "out"), "--save-masks"]) == 0
    (event,) = [json.loads(line) for line in (tmp_path / "out/events.jsonl").read_text().splitlines()]
    detections = event["results"][bundle.name]["detections"]
    segments = event["results"]["panoptic_voc"]["segments"]
    out = tmp_path / "out"
    ids = cv2.imread(str(out / "panoptic/panoptic_voc/000000.png"), cv2.IMREAD_UNCHANGED)
    instance_ids = cv2.imread(str(out / f"masks/{bundle.name}/000000.png"), cv2.IMREAD_UNCHANGED)
    voc = cv2.imread(str(out / "masks/panoptic_voc/000000.png"), cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16 and ids.shape == voc.shape and instance_ids.dtype == np.uint16
    things = [s for s in segments if s["thing"]]
    assert 0 < len(things) <= len(detections)
    assert [s["label"] for s in segments if not s["thing"]] == ["tvmonitor"]
    assert sorted(np.unique(ids[ids > 0]).tolist()) == [s["id"] for s in segments]
    for segment in segments:
        pixels = ids == segment["id"]
        assert pixels.sum() == segment["area"]
        if segment["thing"]:
            assert (instance_ids[pixels] > 0).all()  # things only where an instance is
            assert segment["label"] in {d["label"] for d in detections}
        else:
            assert (voc[pixels] == espnet_bundle.labels.index("tvmonitor")).all()
            assert (instance_ids[pixels] == 0).all()  # stuff only where no thing took the pixel
    person = voc == espnet_bundle.labels.index("person")
    assert (instance_ids[person & (ids > 0)] > 0).all()  # VOC's person is a COCO thing: never stuff


@pytest.fixture(scope="module")
def keypointrcnn(tmp_path_factory):
    out = tmp_path_factory.mktemp("keypointrcnn") / "bundle"
    assert main(["compile", "--model", "keypointrcnn_resnet50_fpn", "--task", "pose", "--input-size", "320x320",
                 "--out", str(out)]) == 0
    from edge.bundle import load_bundle

    return load_bundle(out), rcnn.rcnn_model("keypointrcnn_resnet50_fpn", None, SIZE)


def test_keypointrcnn_matches_pytorch(keypointrcnn, people):
    bundle, net = keypointrcnn
    assert bundle.decoder == "keypointrcnn" and bundle.labels == ["no person", "person"]
    model = Runner(bundle)
    decoder = DECODERS["keypointrcnn"](replace(bundle, thresholds=Thresholds(0.0, 0.5, 100)),
                                       model.backend.outputs)
    outputs, theirs, transform = matched_to_torchvision(model, net, bundle, people, spread=0.1)
    np.testing.assert_allclose(outputs["keypoints"][..., :2], theirs["keypoints"][..., :2], atol=0.05)
    np.testing.assert_allclose(outputs["keypoints_scores"], theirs["keypoints_scores"], atol=1e-3)
    poses = decoder({k: v.copy() for k, v in outputs.items()}, transform)  # back to the 640 × 480 frame
    resized, inside = torchvision_in_frame(net, outputs, transform)
    np.testing.assert_allclose(poses.boxes[inside], resized["boxes"].numpy()[inside], atol=0.02)
    np.testing.assert_allclose(poses.keypoints[..., :2], resized["keypoints"].numpy()[..., :2], atol=0.02)
    assert poses.to_event(bundle.label)["poses"][0]["box"] is not None


def test_fasterrcnn_mobilenet_matches_pytorch(tmp_path, people, live_weights):
    """The two-stage family's mobile member at the size it was trained at (320): boxes, labels and scores.
    A checkpoint of the random model with two classes (over 91, random class scores all fall under the
    graph's candidate threshold, 0.05) and live BatchNorm statistics (else every score ties)."""
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    checkpoint, random = tmp_path / "two_classes.pth", rcnn.build_rcnn(name, (320, 320), num_classes=2)
    live_weights(random.backbone, (4, 3, 320, 320))
    torch.save(random.state_dict(), checkpoint)
    out = tmp_path / "bundle"
    assert main(["compile", "--model", name, "--task", "detection", "--checkpoint", str(checkpoint),
                 "--out", str(out)]) == 0
    from edge.bundle import load_bundle

    bundle, net = load_bundle(out), rcnn.rcnn_model(name, checkpoint, (320, 320))
    assert bundle.decoder == "fasterrcnn" and bundle.input.shape == (1, 3, 320, 320)
    assert bundle.labels == ["class_0", "class_1"]
    model = Runner(bundle)
    outputs, theirs, transform = matched_to_torchvision(model, net, bundle, people, spread=0.01)
    np.testing.assert_array_equal(outputs["labels"], theirs["labels"])
    decoder = DECODERS["fasterrcnn"](replace(bundle, thresholds=Thresholds(0.0, 0.5, 100)), model.backend.outputs)
    found = decoder({k: v.copy() for k, v in outputs.items()}, transform)  # back to the 640 × 480 frame
    resized, inside = torchvision_in_frame(net, outputs, transform)
    np.testing.assert_allclose(found.boxes[inside], resized["boxes"].numpy()[inside], atol=0.02)


def test_pruned_fasterrcnn_exports_and_runs_in_the_runtime(tmp_path, people):
    """Half the channels of the two-stage detector: the FPN and backbone thin out, the RPN head (which
    torchvision detaches, so only the RPN-aware trace sees it) and the box predictor keep their widths, and
    the pruned graph, post-processing included, still runs as a bundle."""
    from compile.compress import compress
    from compile.families import rcnn_network
    from compile.prune import PruneConfig

    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    result = compress(lambda: rcnn_network(name), tmp_path / "pruned", name="frcnn", prune_config=PruneConfig(0.5))
    original, pruned = result.rows
    assert pruned.macs < 0.5 * original.macs and pruned.params < 0.5 * original.params
    kept = set(result.compile_block["pruning"]["kept_layers"])
    assert {"model.rpn.head.cls_logits", "model.rpn.head.bbox_pred"} <= kept, kept
    assert any(layer.startswith("model.roi_heads.box_predictor") for layer in kept), kept
    model = Runner(result.bundle, "onnxruntime")
    found = model(people)
    assert found.boxes.shape[1:] == (4,) and len(found.boxes) == len(found.scores)  # random weights: any count
    model.close()


@pytest.mark.parametrize("name, kept_head", [
    ("maskrcnn_resnet50_fpn", "model.roi_heads.mask_predictor"),
    ("keypointrcnn_resnet50_fpn", "model.roi_heads.keypoint_predictor"),
])
def test_pruned_mask_and_keypoint_rcnn_export_and_run(tmp_path, people, name, kept_head, monkeypatch):
    """A quarter of the channels: the mask and keypoint heads keep their output widths (classes, keypoints),
    and so does the box regression (classes × 4), whose detected boxes those heads pool from: coordinates, not
    channels (tracing them as channels once tied every FPN group to it, past 24 GB). The pruned graph exports
    with its post-processing and runs as a bundle (random weights: any count)."""
    # One timed run per model: the report's CPU latency (33 runs of a 200-400 GMAC graph each) is not checked here.
    monkeypatch.setattr("compile.report.cpu_latencies_ms",
                        lambda models, spec: cpu_latencies_ms(models, spec, runs=1, warmup=0))
    from compile.compress import compress
    from compile.families import rcnn_network
    from compile.prune import PruneConfig

    def network():  # fewer proposals and detections than torchvision's 1000 and 100: the same layers, less to run
        built = rcnn_network(name, input_size=SIZE)
        built.module.model.rpn._post_nms_top_n["testing"] = 100
        built.module.model.roi_heads.detections_per_img = 10
        return built

    result = compress(network, tmp_path / "pruned", name=name, prune_config=PruneConfig(0.25))
    original, pruned = result.rows
    assert pruned.macs < 0.75 * original.macs
    kept = set(result.compile_block["pruning"]["kept_layers"])
    assert any(layer.startswith(kept_head) for layer in kept), kept
    assert "model.roi_heads.box_predictor.bbox_pred" in kept, kept
    model = Runner(result.bundle, "onnxruntime")
    try:
        found = model(people)
    finally:
        model.close()
    assert found.boxes.shape == (len(found.scores), 4)

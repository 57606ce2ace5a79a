"""``edge compile`` for torchvision classifiers and semantic segmenters: the ONNX export computes what PyTorch
computes (random weights with live activations, on random and real images), and the bundles run as the
runtime runs them, whole frames or one crop per detected box."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from compile import torchvision_classification as tvc  # noqa: E402
from compile import torchvision_segmentation as tvs  # noqa: E402
from compile.build import compile_model  # noqa: E402
from edge.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edge.bundle import Needs, load_bundle  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.crops import crop_boxes  # noqa: E402
from edge.graph import RunnerGraph  # noqa: E402
from edge.pipeline.messages import to_events  # noqa: E402
from edge.preprocess import Preprocessor  # noqa: E402
from edge.runner import Runner  # noqa: E402

CLASSIFIERS = ["resnet18", "resnet50", "googlenet", "densenet121", "mobilenet_v3_large"]


@pytest.fixture(scope="module")
def people(assets):
    return cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))


def inputs(bundle, image) -> np.ndarray:
    """A batch of two: a real image preprocessed as the runtime does, and random values."""
    batch = np.random.default_rng(3).standard_normal((2, *bundle.input.shape[1:])).astype(np.float32)
    Preprocessor(bundle.input)(image, batch[0])
    return batch


def onnx_outputs(bundle, batch: np.ndarray) -> np.ndarray:
    """ONNX Runtime's outputs for each item (one at a time: segmenters are exported with a fixed batch)."""
    backend = OnnxRuntimeBackend(bundle.file("model"), input_shapes={bundle.input.name: bundle.input.shape})
    slot = backend.slots[0]
    outputs = []
    for item in batch:
        slot.inputs[bundle.input.name][0] = item
        outputs.extend(output.copy() for output in backend.run(slot).values())
    backend.close()
    return np.concatenate(outputs)


def assert_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * max(1.0, float(np.abs(theirs).max())))


@pytest.fixture(scope="module")
def compiled(live_weights, tmp_path_factory):
    """name → (bundle, torch model) of a classifier compiled from a live random checkpoint, made once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            net = live_weights(tvc.build_classifier(name), (2, 3, 224, 224))
            folder = tmp_path_factory.mktemp(name)
            torch.save(net.state_dict(), folder / "live.pth")
            bundle = compile_model(name, folder / "bundle", task="classification", checkpoint=folder / "live.pth")
            cache[name] = bundle, tvc.classifier(name, folder / "live.pth")
        return cache[name]

    return get


@pytest.fixture(params=CLASSIFIERS)
def classifier(request, compiled):
    return compiled(request.param)


def test_classifier_onnx_top5_matches_pytorch(classifier, people):
    bundle, net = classifier
    assert bundle.decoder == "softmax-topk" and len(bundle.labels) == 1000 and bundle.labels[0] == "tench"
    batch = inputs(bundle, people)
    ours = onnx_outputs(bundle, batch)  # the batch axis is dynamic
    with torch.no_grad():
        theirs = net(torch.from_numpy(batch)).numpy()
    for source, a, b in zip(("real image", "random"), ours, theirs):
        assert b.std() > 1e-3, source  # live logits (not torchvision's dead random init): a real comparison
        top = np.argsort(-b)[:6]
        assert b[top[4]] - b[top[5]] > 1e-5, source  # no near-tie at the top-5 boundary
        np.testing.assert_array_equal(np.argsort(-a)[:5], top[:5], err_msg=source)
        assert_close(a, b)


def test_classification_event_and_per_box_crops_in_one_batch(compiled, yolox_bundle, people):
    bundle, _ = compiled("resnet18")
    top = Runner(bundle)(people).to_event(bundle.label)["top"]
    assert len(top) == 5 and [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    on_boxes = replace(load_bundle(bundle.root), name="boxes", needs=Needs(detector="yolox_nano", max_crops=8))
    models = RunnerGraph([yolox_bundle, on_boxes])
    results = models(people)
    events = to_events(results, models.labels)
    assert [d["box"] for d in events["boxes"]["detections"]] == [d["box"] for d in events["yolox_nano"]["detections"]]
    assert all(len(d["classes"]) == 5 and d["classes"][0]["label"] in bundle.labels
               for d in events["boxes"]["detections"])
    assert models.runners[1].input_buffer.shape[0] == 8  # dynamic batch: all of the frame's crops in one run
    single = Runner(bundle)  # each crop on its own gives the same classes
    batched = results["boxes"]
    for box, ids in zip(crop_boxes(batched.detections.boxes, 1.0, 1.0), batched.class_ids):
        (alone,) = single.on_boxes(people, box[None])
        np.testing.assert_array_equal(alone.class_ids, ids)


@pytest.mark.parametrize("model", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_segmenter_onnx_matches_pytorch(model, live_weights, people, tmp_path):
    net = live_weights(tvs.SegmentationLogits(tvs.build_segmenter(model)), (2, 3, 240, 320))
    torch.save(net.model.state_dict(), tmp_path / "live.pth")
    assert main(["compile", "--model", model, "--task", "segmentation", "--input-size", "320x240",
                 "--checkpoint", str(tmp_path / "live.pth"), "--out", str(tmp_path / "bundle")]) == 0
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.input.shape == (1, 3, 240, 320) and bundle.labels[15] == "person"
    batch = inputs(bundle, people)
    ours = onnx_outputs(bundle, batch)
    with torch.no_grad():
        theirs = net(torch.from_numpy(batch)).numpy()
    assert ours.shape == theirs.shape == (2, 21, 240, 320)
    for source, a, b in zip(("real image", "random"), ours, theirs):
        assert b.std() > 1e-3 and len(np.unique(b.argmax(0))) > 3, source
        assert (a.argmax(0) == b.argmax(0)).mean() > 0.999, source
        assert_close(a, b)
    seg = Runner(bundle)(people)  # and the runtime's class map is PyTorch's argmax at frame size
    expected = theirs[0].argmax(0)
    expected = cv2.resize(expected.astype(np.uint8), (640, 480), interpolation=cv2.INTER_NEAREST)
    assert (seg.class_map == expected).mean() > 0.98

"""``edge compile`` for torchvision's SSDlite: the ONNX export, the bundle and the ``ssd`` decoder reproduce
PyTorch and torchvision's own post-processing, and the command fails with the contract's exit codes.

torchvision's random initialisation of SSDlite shrinks activations layer by layer until every logit is
~1e-14, so every score is exactly 1/91: parity on it would only compare ties. The parity tests therefore
compile a "live" checkpoint: the same random weights with BatchNorm statistics re-estimated on random
images, which keeps every layer at unit scale and gives outputs with spread.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torchvision.models.detection.image_list import ImageList  # noqa: E402

from compile import torchvision_detection as tvd  # noqa: E402
from compile.build import compile_model  # noqa: E402
from compile.checkpoint import read_state_dict  # noqa: E402
from edge.bundle import Thresholds, load_bundle, sha256_file  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.decoders import DECODERS  # noqa: E402
from edge.preprocess import Preprocessor  # noqa: E402
from edge.runner import Runner  # noqa: E402

MODEL = "ssdlite320_mobilenet_v3_large"
SOURCE_SIZE = (640, 480)  # width, height: not square, so boxes map back with different x and y scales


@pytest.fixture(scope="module")
def random_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("compile") / "random"
    assert main(["compile", "--model", MODEL, "--task", "detection", "--out", str(out)]) == 0
    return load_bundle(out)


@pytest.fixture(scope="module")
def live_checkpoint(tmp_path_factory):
    """Random SSDlite weights whose activations survive (see the module docstring), saved as {"model": ...}."""
    model = tvd.build_ssd(MODEL)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: the statistics of exactly this batch
    model.train()
    with torch.no_grad():
        tvd.SsdHeads(model)(torch.randn(8, 3, 320, 320, generator=torch.Generator().manual_seed(1)))
    path = tmp_path_factory.mktemp("checkpoints") / "live.pth"
    torch.save({"model": model.state_dict(), "epoch": 1}, path)  # as torchvision's reference scripts save
    return path


@pytest.fixture(scope="module")
def live_bundle(live_checkpoint, tmp_path_factory):
    return compile_model(MODEL, tmp_path_factory.mktemp("compile") / "live", task="detection",
                         checkpoint=live_checkpoint)


@pytest.fixture(scope="module")
def live_torch(live_checkpoint):
    return tvd.ssd_model(MODEL, live_checkpoint)


@pytest.fixture(scope="module")
def live_edge(live_bundle):
    model = Runner(live_bundle, "onnxruntime")
    yield model
    model.close()


@pytest.fixture(scope="module")
def frame(assets):
    return cv2.resize(cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg")), SOURCE_SIZE)


def edge_heads(model: Runner, images: np.ndarray) -> dict[str, np.ndarray]:
    """The raw heads ONNX Runtime computes from a model-input tensor (copied: the backend reuses its buffers)."""
    model.input_buffer[...] = images
    return {name: array.copy() for name, array in model.backend.run(model.slot).items()}


def torch_heads(model, images: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outputs = tvd.SsdHeads(model)(torch.from_numpy(images))
    return {name: tensor.numpy() for name, tensor in zip(tvd.OUTPUT_NAMES, outputs)}


def torchvision_detections(model, heads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchvision's own post-processing of raw heads, with anchors from its own generator."""
    width, height = tvd.input_size(model)
    images = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        features = list(model.backbone(images).values())
        anchors = model.anchor_generator(ImageList(images, [(height, width)]), features)
        detections = model.postprocess_detections({k: torch.from_numpy(v) for k, v in heads.items()}, anchors,
                                                  [(height, width)])
        detections = model.transform.postprocess(detections, [(height, width)], [SOURCE_SIZE[::-1]])[0]
    return {k: v.numpy() for k, v in detections.items()}


def assert_decoder_matches_torchvision(bundle, edge_model, torch_model, heads, transform):
    thresholds = Thresholds(score=torch_model.score_thresh, iou=torch_model.nms_thresh,
                            max_detections=torch_model.detections_per_img)
    assert bundle.decoder_args["topk_candidates"] == torch_model.topk_candidates
    decoder = DECODERS["ssd"](replace(bundle, thresholds=thresholds), edge_model.backend.outputs)
    ours = decoder(heads, transform)
    theirs = torchvision_detections(torch_model, heads)
    assert len(ours) == len(theirs["scores"]) > 0
    np.testing.assert_allclose(ours.scores, theirs["scores"], rtol=0, atol=1e-4)
    runs = near_tie_runs(theirs["scores"])
    ours_order = order_within_runs(runs, ours.class_ids, ours.boxes)
    theirs_order = order_within_runs(runs, theirs["labels"], theirs["boxes"])
    np.testing.assert_array_equal(ours.class_ids[ours_order], theirs["labels"][theirs_order])
    np.testing.assert_allclose(ours.boxes[ours_order], theirs["boxes"][theirs_order], rtol=0, atol=1e-3)
    return ours


def near_tie_runs(scores: np.ndarray, tie: float = 1e-6) -> np.ndarray:
    """A run id per position of a descending score list; a new run starts where the score drops by more than
    ``tie``. NumPy's and torch's softmax round a few ulps apart, so near-tied detections may come out in either
    order: within a run they are compared by class and box instead, and every other swap still fails."""
    return np.cumsum(np.diff(scores, prepend=np.inf) < -tie)


def order_within_runs(runs: np.ndarray, class_ids: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Positions sorted by run, then class, then box corner: the given order wherever runs have one member."""
    return np.lexsort((boxes[:, 1].round(1), boxes[:, 0].round(1), class_ids, runs))


def candidates_per_class(logits: np.ndarray, score: float) -> np.ndarray:
    """How many anchors score above ``score`` in each class but the background."""
    probs = torch.softmax(torch.from_numpy(logits[0]), dim=-1).numpy()
    return (probs[:, 1:] > score).sum(axis=0)


def assert_nms_removed_candidates(logits: np.ndarray, detections, topk: int) -> None:
    """Guards the parity against passing without NMS at work: more top-k candidates outscore the weakest
    detection than there are detections above it, so NMS removed some."""
    assert np.minimum(candidates_per_class(logits, detections.scores.min()), topk).sum() >= len(detections)


# --- (a) the ONNX export computes what PyTorch computes -------------------------------------------------------


@pytest.mark.parametrize("source", ["image", "random"])
def test_onnx_heads_match_pytorch(live_bundle, live_edge, live_torch, frame, source):
    images = np.empty(live_bundle.input.shape, np.float32)
    if source == "image":
        Preprocessor(live_bundle.input)(frame, images)
    else:
        images[...] = np.random.default_rng(0).standard_normal(images.shape)
    ours, theirs = edge_heads(live_edge, images), torch_heads(live_torch, images)
    for name in tvd.OUTPUT_NAMES:
        assert ours[name].shape == theirs[name].shape
        assert theirs[name].std() > 0.1  # outputs with spread, so the comparison means something
        assert np.abs(ours[name] - theirs[name]).max() <= 1e-4, name


# --- (b) the ssd decoder computes what torchvision's post-processing computes -----------------------------------


def test_decoder_matches_torchvision_on_the_models_outputs(live_bundle, live_edge, live_torch, frame):
    images = np.empty(live_bundle.input.shape, np.float32)
    transform = Preprocessor(live_bundle.input)(frame, images)
    heads = edge_heads(live_edge, images)
    assert candidates_per_class(heads["cls_logits"], live_torch.score_thresh).max() > live_torch.topk_candidates
    ours = assert_decoder_matches_torchvision(live_bundle, live_edge, live_torch, heads, transform)
    assert_nms_removed_candidates(heads["cls_logits"], ours, live_torch.topk_candidates)


@pytest.mark.parametrize("max_detections", [None, 100_000], ids=["torchvision-default", "all-kept"])
def test_decoder_matches_torchvision_on_spread_outputs(live_bundle, live_edge, live_torch, frame, monkeypatch,
                                                       max_detections):
    """Confident, scattered synthetic heads: many classes pass the threshold with more than ``topk_candidates``
    candidates, and with no final cut the whole NMS result is compared, suppressed boxes included."""
    if max_detections is not None:
        monkeypatch.setattr(live_torch, "detections_per_img", max_detections)
    rng = np.random.default_rng(7)
    points, classes = len(np.load(live_bundle.file("anchors"))), tvd.num_classes(live_torch)
    heads = {"bbox_regression": rng.normal(0, 1, (1, points, 4)).astype(np.float32),
             "cls_logits": rng.normal(0, 3, (1, points, classes)).astype(np.float32)}
    transform = Preprocessor(live_bundle.input)(frame, np.empty(live_bundle.input.shape, np.float32))
    candidates = candidates_per_class(heads["cls_logits"], live_torch.score_thresh)
    assert (candidates > live_torch.topk_candidates).sum() > classes // 2
    ours = assert_decoder_matches_torchvision(live_bundle, live_edge, live_torch, heads, transform)
    assert_nms_removed_candidates(heads["cls_logits"], ours, live_torch.topk_candidates)
    if max_detections is None:
        assert len(ours) == live_torch.detections_per_img  # the final cut was applied alike


# --- (c) the command ---------------------------------------------------------------------------------------------


def test_compile_without_checkpoint_says_the_weights_are_random(random_bundle):
    assert random_bundle.provenance["weights"] == "random"
    assert random_bundle.extra["compile"] == {"model": MODEL, "opset": 17, "exporter": "torchscript"}
    assert random_bundle.decoder == "ssd" and random_bundle.input.shape == (1, 3, 320, 320)
    assert random_bundle.input.resize == "stretch" and random_bundle.input.color == "rgb"
    assert random_bundle.thresholds == Thresholds(score=0.3, iou=0.55, max_detections=300)
    assert random_bundle.decoder_args == {"box_coder_weights": [10.0, 10.0, 5.0, 5.0], "topk_candidates": 300,
                                          "background_class": 0}
    assert random_bundle.input.mean == random_bundle.input.std == (127.5, 127.5, 127.5)
    assert len(random_bundle.labels) == 91 and random_bundle.labels[1] == "person"


def test_random_bundles_are_reproducible(random_bundle, tmp_path):
    again = compile_model(MODEL, tmp_path / "again", task="detection")
    for role in ("model", "anchors"):
        assert sha256_file(again.file(role)) == sha256_file(random_bundle.file(role))


def test_a_checkpoint_sets_the_classes_and_the_provenance(tmp_path, capsys):
    checkpoint = tmp_path / "three.pth"
    torch.save(tvd.build_ssd(MODEL, num_classes=3).state_dict(), checkpoint)
    out = tmp_path / "bundle"
    assert main(["compile", "--model", MODEL, "--checkpoint", str(checkpoint), "--task", "detection",
                 "--out", str(out)]) == 0
    bundle = load_bundle(out)
    assert bundle.labels == ["class_0", "class_1", "class_2"]
    assert bundle.provenance["weights"] == "checkpoint"
    assert bundle.provenance["checkpoint_sha256"] == sha256_file(checkpoint)
    model = Runner(bundle, "onnxruntime")
    assert {o.name: o.shape for o in model.backend.outputs}["cls_logits"] == (1, 3234, 3)
    model.close()
    assert "weights checkpoint" in capsys.readouterr().out


@pytest.mark.parametrize("nesting", [None, "model", "state_dict"])
def test_a_state_dict_is_read_plain_or_nested_as_training_scripts_save_it(tmp_path, nesting):
    state = {"conv.weight": torch.ones(2, 3)}
    torch.save(state if nesting is None else {nesting: state, "epoch": 3}, tmp_path / "c.pth")
    assert read_state_dict(tmp_path / "c.pth").keys() == state.keys()


def test_live_bundle_provenance_names_its_checkpoint(live_bundle, live_checkpoint):
    assert live_bundle.provenance["weights"] == "checkpoint"
    assert live_bundle.provenance["checkpoint"] == str(live_checkpoint.resolve())


def write_bad_checkpoint(path, kind, live_checkpoint):
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "missing_key":
        state = torch.load(live_checkpoint, weights_only=True)["model"]
        del state["head.regression_head.module_list.0.1.bias"]
        torch.save(state, path)


@pytest.mark.parametrize("model, checkpoint, code, message", [
    (MODEL, "missing", 3, "no such checkpoint file"),
    (MODEL, "corrupt", 3, "not a loadable PyTorch checkpoint"),
    (MODEL, "missing_key", 3, "missing key 'head.regression_head.module_list.0.1.bias'"),
    ("resnet50", None, 2, "supported: ssdlite320_mobilenet_v3_large (detection), ssd300_vgg16 (detection)"),
])
def test_failures_are_one_line_with_the_contract_exit_code(tmp_path, capsys, live_checkpoint, model, checkpoint,
                                                            code, message):
    path = tmp_path / "model.pth"
    write_bad_checkpoint(path, checkpoint, live_checkpoint)
    args = ["compile", "--model", model, "--task", "detection", "--out", str(tmp_path / "out")]
    if checkpoint is not None:
        args += ["--checkpoint", str(path)]
    assert main(args) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err
    if checkpoint is not None:
        assert str(path) in err


def test_a_task_the_model_does_not_do_is_a_usage_error(tmp_path, capsys):
    assert main(["compile", "--model", MODEL, "--task", "pose", "--out", str(tmp_path)]) == 2
    assert "is a detection model, not pose" in capsys.readouterr().err


# --- (d) the compiled bundle runs ----------------------------------------------------------------------------------


def test_the_random_bundle_runs_on_a_frame(random_bundle, frame):
    model = Runner(random_bundle, "onnxruntime")
    detections = model(frame)
    model.close()
    assert detections.boxes.shape == (len(detections), 4)  # random weights: what it finds does not matter

"""Shared fixtures: the real assets (read in place, never copied into the repo) and bundles built from them."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
from pathlib import Path

import pytest

from edge import demo
from edge.bundle import Thresholds
from edge.bundle.create import create_bundle
from tests.helpers.runtime_only import compile_import

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("EDGE_ASSETS", ROOT.parent / "shared" / "assets"))
# Runtime only (a Jetson's Python, CI's Python 3.10 leg): test modules that import the compile tools are not
# collected, everything else is (tests/helpers/runtime_only.py says how they are told apart).
RUNTIME_ONLY = importlib.util.find_spec("torch") is None
LEFT_OUT: dict[str, str] = {}  # test module → the import that needs the compile tools


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if not RUNTIME_ONLY or collection_path.suffix != ".py" or not any(
            fnmatch.fnmatch(collection_path.name, pattern) for pattern in config.getini("python_files")):
        return None
    needs = compile_import(collection_path)
    if needs is None:
        return None
    LEFT_OUT[collection_path.name] = needs
    return True


def pytest_report_collectionfinish(config, start_path, items) -> list[str]:
    if not LEFT_OUT:
        return []
    modules = ", ".join(f"{name} ({needs})" for name, needs in sorted(LEFT_OUT.items()))
    return [f"runtime only (torch is not installed): {len(LEFT_OUT)} test modules need the compile tools and were "
            f"not collected: {modules}"]


def pytest_terminal_summary(terminalreporter) -> None:
    if LEFT_OUT:
        terminalreporter.write_line(f"runtime only: {len(LEFT_OUT)} test modules that need the compile tools "
                                    "were not collected (listed after the collection count)")


@pytest.fixture(scope="session")
def assets() -> Path:
    if not (ASSETS / "MANIFEST.md").is_file():
        pytest.skip(f"assets not found at {ASSETS} (set EDGE_ASSETS)")
    return ASSETS


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def yolox_bundle(assets, bundle_dir):
    """YOLOX-nano COCO as the MANIFEST describes it: BGR, 0..255, letterbox top-left, pad 114."""
    return demo.yolox_bundle(assets, bundle_dir)


@pytest.fixture(scope="session")
def highway_frames(assets) -> list:
    """Eight BGR frames of the highway clip (4-8 cars each), spread over it."""
    from calibration.frames import sample_frames

    return [f.image for f in sample_frames([str(assets / "videos/bgslibrary_highway_traffic_320x240.avi")], 8)]


@pytest.fixture(scope="session")
def yolox_highway_batch(yolox_bundle, highway_frames):
    """The highway frames as YOLOX-nano's input batch, letterboxed as deployed (compile tests)."""
    import torch

    from compile.augment import Augment

    augment = Augment(yolox_bundle.input, mixup=False)
    return augment.normalise(torch.stack([augment.view(frame, 0, 0) for frame in highway_frames]))


@pytest.fixture(scope="session")
def espnet_bundle(assets, bundle_dir):
    """ESPNetv2 VOC-21: RGB, ImageNet mean/std, plain resize to 384 × 384; per-pixel argmax."""
    return demo.espnet_bundle(assets, bundle_dir)


@pytest.fixture(scope="session")
def movenet_topdown_bundle(assets, bundle_dir):
    """MoveNet Lightning run on every person YOLOX-nano finds (needs.detector = yolox_nano)."""
    return demo.movenet_bundle(assets, bundle_dir)


@pytest.fixture(scope="session")
def movenet_bundle(assets, bundle_dir):
    """MoveNet Lightning on whole frames: NHWC uint8 RGB, padded to a square about the centre and resized to
    192 × 192, as Google's ``tf.image.resize_with_pad`` does (the plain resize of the MANIFEST squeezes people
    and loses a keypoint or two)."""
    return create_bundle(assets / demo.MOVENET, bundle_dir / "movenet", task="pose", decoder="movenet",
                         name="movenet", color="rgb", resize="letterbox-center", pad_value=0.0,
                         thresholds=Thresholds(0.2, 0.45))


@pytest.fixture(scope="session")
def live_weights():
    """A function that makes a randomly initialised torch model's activations survive: BatchNorm statistics
    re-estimated on random images (torchvision's random init with unit running variance shrinks them
    layer by layer to ~1e-10, where an export-parity check would only compare ties)."""
    torch = pytest.importorskip("torch")

    def liven(model, shape, seed=1):
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # a cumulative average: the statistics of exactly this batch
        model.train()
        with torch.no_grad():
            model(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)))
        return model.eval()

    return liven


@pytest.fixture(scope="session")
def mtcnn_bundle(assets, bundle_dir):
    """MTCNN compiled from facenet-pytorch's weights (``edge compile --model mtcnn``, torch needed to build)."""
    pytest.importorskip("torch")
    from edge.bundle import load_bundle
    from edge.cli import main

    out = bundle_dir / "mtcnn"
    checkpoints = [f"--checkpoint={net}={assets / f'models/detection/mtcnn_{net}.pt'}"
                   for net in ("pnet", "rnet", "onet")]
    assert main(["compile", "--model", "mtcnn", "--task", "detection", "--out", str(out), *checkpoints]) == 0
    return load_bundle(out)

"""Shared fixtures: the real assets (read in place, never copied into the repo) and bundles built from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.bundle import Thresholds
from edge.bundle_create import create_bundle

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("EDGE_ASSETS", ROOT.parent / "shared" / "assets"))


@pytest.fixture(scope="session")
def assets() -> Path:
    if not (ASSETS / "MANIFEST.md").is_file():
        pytest.skip(f"assets not found at {ASSETS} (set EDGE_ASSETS)")
    return ASSETS


@pytest.fixture(scope="session")
def yolox_bundle(assets, tmp_path_factory):
    """YOLOX-nano COCO as the MANIFEST describes it: BGR, 0..255, letterbox top-left, pad 114."""
    return create_bundle(assets / "models/detection/yolox_nano_416x416.onnx",
                         tmp_path_factory.mktemp("bundles") / "yolox_nano", task="detection", decoder="yolox",
                         name="yolox_nano", labels=assets / "models/detection/coco80.names",
                         thresholds=Thresholds(score=0.3, iou=0.45), color="bgr", resize="letterbox",
                         pad_value=114.0)

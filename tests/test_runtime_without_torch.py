"""The runtime must work on a device without PyTorch: importing edge/streams or replaying never loads torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Fails any attempt to import torch/torchvision, then imports every runtime module and runs a replay.
PROBE = textwrap.dedent("""
    import importlib, pkgutil, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError("the runtime imported " + name)

    sys.meta_path.insert(0, NoTorch())
    import edge, streams
    for package in (edge, streams):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    from edge.cli import main
    code = main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
    assert not loaded, loaded
    sys.exit(code)
""")


def test_import_and_replay_load_no_torch(yolox_bundle, espnet_bundle, movenet_topdown_bundle, assets, tmp_path):
    """Detection, segmentation and top-down pose on one frame, masks saved, all without torch."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "replay", str(assets / "images/fastestdet_people_indoor.jpg"),
         "--bundle", str(yolox_bundle.root), "--bundle", str(espnet_bundle.root),
         "--bundle", str(movenet_topdown_bundle.root), "--out", str(tmp_path), "--save-masks"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "events.jsonl").read_text().count("\n") == 1
    assert (tmp_path / "masks/espnetv2_voc/000000.png").is_file()


def test_the_mtcnn_cascade_runs_without_torch(mtcnn_bundle, assets, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "replay", str(assets / "images/skimage_astronaut_eileen_collins.png"),
         "--bundle", str(mtcnn_bundle.root), "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert '"label":"face"' in (tmp_path / "events.jsonl").read_text()

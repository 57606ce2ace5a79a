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


def test_import_and_replay_load_no_torch(yolox_bundle, assets, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "replay", str(assets / "images/fastestdet_people_indoor.jpg"),
         "--bundle", str(yolox_bundle.root), "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "events.jsonl").read_text().count("\n") == 1

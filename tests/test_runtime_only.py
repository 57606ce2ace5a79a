"""How a runtime-only run (no torch) tells the test modules that need the compile tools from the others."""

from __future__ import annotations

import shutil

from tests.helpers import runtime_only
from tests.helpers.runtime_only import ROOT, compile_import, compile_only_modules


def test_the_compile_extra_comes_from_pyproject():
    assert {"torch", "torchvision", "onnx", "torch_pruning", "onnx2torch", "compile", "calibration"} <= \
        compile_only_modules()
    assert not {"numpy", "cv2", "onnxruntime", "edge", "streams", "pytest"} & compile_only_modules()


def test_real_modules_are_told_apart():
    assert compile_import(ROOT / "tests/test_nms.py") == "torch"  # a module-level pytest.importorskip
    assert compile_import(ROOT / "tests/test_quantize.py").startswith("calibration")
    assert compile_import(ROOT / "tests/test_daemon.py") is None  # through tests.helpers.servers, all runtime
    assert compile_import(ROOT / "tests/test_backend.py") is None  # onnx only inside a test, after importorskip


def test_through_local_helpers_at_any_depth(tmp_path, monkeypatch):
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    helpers = tmp_path / "tests/helpers"
    helpers.mkdir(parents=True)
    (helpers / "__init__.py").write_text("")
    (helpers / "outer.py").write_text("from . import inner\n")
    (helpers / "inner.py").write_text("import numpy\ntry:\n    import torch_pruning as tp\nexcept ImportError:\n"
                                      "    tp = None\n")
    (helpers / "lazy.py").write_text("def build():\n    import torch\n")
    monkeypatch.setattr(runtime_only, "ROOT", tmp_path)
    (tmp_path / "tests/test_deep.py").write_text("from tests.helpers.outer import x\n")
    (tmp_path / "tests/test_lazy.py").write_text("import tests.helpers.lazy\n\ndef test():\n    import onnx\n")
    (tmp_path / "tests/test_broken.py").write_text("import no_such_package\nfrom tests.helpers import lazy\n")
    assert compile_import(tmp_path / "tests/test_deep.py") == \
        "tests.helpers.outer → tests.helpers.inner → torch_pruning"
    assert compile_import(tmp_path / "tests/test_lazy.py") is None  # imports inside functions are the test's
    assert compile_import(tmp_path / "tests/test_broken.py") is None  # collected, so its ImportError fails the run

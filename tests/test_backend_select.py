"""The backend decision: TensorRT with a matching engine, a rebuild, or ONNX Runtime with a reason.

:func:`choose_backend` is pure, so every branch is checked here. The end-to-end tests run ``open_backend``
on this machine, which has no TensorRT; where they need TensorRT to look present, they replace
``runtime_target`` (the one function that asks the machine) and then check the fallback paths, which never
reach TensorRT itself.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import shutil
from pathlib import Path

import pytest

from edge.backends import open_backend
from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.backends.select import Candidate, choose_backend, gather_facts
from edge.bundle import load_bundle, sha256_file
from edge.cli import main
from edge.engines import EngineOptions, EngineTag, ProfileShape, Target, engine_folder, write_engine
from edge.errors import UsageError

ROOT = Path("bundles/yolox")
FP16 = EngineOptions("fp16")
ORIN = Target("10.3.0", "8.7", "Orin", "NVIDIA Jetson AGX Orin Developer Kit")
without_tensorrt = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                      reason="checks the paths taken where TensorRT is not installed")


def candidate(name, precision="fp16", problems=(), created="2030-01-01T00:00:00+00:00", dla_core=None):
    tag = EngineTag("yolox", "a" * 64, ORIN, EngineOptions(precision, dla_core=dla_core), (), created=created)
    return Candidate(Path(name), tag, tuple(problems))


def choose(requested="auto", unavailable=None, candidates=(), allow_build=True, default=FP16):
    return choose_backend(requested, ROOT, unavailable=unavailable, candidates=candidates, allow_build=allow_build,
                          default=default)


def test_onnxruntime_when_asked():
    assert choose("onnxruntime", candidates=[candidate("a.engine")]).backend == "onnxruntime"


def test_without_tensorrt_auto_falls_back_and_tensorrt_fails():
    choice = choose(unavailable="TensorRT is not installed")
    assert choice.backend == "onnxruntime" and "TensorRT is not installed" in choice.reason
    with pytest.raises(UsageError, match="^--backend tensorrt: TensorRT is not installed$"):
        choose("tensorrt", unavailable="TensorRT is not installed")


@pytest.mark.parametrize("requested", ["auto", "tensorrt"])
def test_a_matching_engine_is_used_lowest_precision_then_newest_first(requested):
    choice = choose(requested, candidates=[
        candidate("fp16.engine"), candidate("int8-old.engine", "int8", created="2029-01-01T00:00:00+00:00"),
        candidate("int8-new.engine", "int8"), candidate("stale-int8.engine", "int8", ["built with TensorRT 8.6"],
                                                        created="2031-01-01T00:00:00+00:00")])
    assert (choice.backend, choice.engine, choice.build) == ("tensorrt", Path("int8-new.engine"), None)


def test_a_stale_engine_is_rebuilt_with_its_own_options():
    stale = candidate("old.engine", "int8", ["it was built with TensorRT 8.6.2, this machine has 10.3.0"], dla_core=1)
    choice = choose(candidates=[stale])
    assert choice.backend == "tensorrt" and choice.engine is None
    assert choice.build == EngineOptions("int8", dla_core=1)
    assert "old.engine does not fit: it was built with TensorRT 8.6.2" in choice.reason
    assert "rebuilding it" in choice.reason


def test_a_stale_engine_without_builds_falls_back_or_fails():
    stale = [candidate("old.engine", problems=["it was built for Xavier"])]
    choice = choose(candidates=stale, allow_build=False)
    assert choice.backend == "onnxruntime"
    assert "it was built for Xavier" in choice.reason and "builds are not allowed" in choice.reason
    with pytest.raises(UsageError, match="edge build-engine bundles/yolox"):
        choose("tensorrt", candidates=stale, allow_build=False)


def test_no_engine():
    choice = choose()
    assert choice.backend == "onnxruntime" and "no TensorRT engine" in choice.reason
    assert choose("tensorrt").build == EngineOptions()
    assert choose("tensorrt", default=EngineOptions("int8")).build == EngineOptions("int8")  # a quantized bundle
    with pytest.raises(UsageError, match="has no TensorRT engine"):
        choose("tensorrt", allow_build=False)


@without_tensorrt
def test_on_this_machine_auto_is_onnx_runtime_and_says_why_quietly(yolox_bundle, caplog):
    caplog.set_level(logging.DEBUG, logger="edge.backends")
    backend = open_backend(yolox_bundle, "auto")
    assert isinstance(backend, OnnxRuntimeBackend)
    backend.close()
    (record,) = [r for r in caplog.records if r.name == "edge.backends"]
    assert record.levelno == logging.INFO and "ONNX Runtime: TensorRT cannot run here" in record.getMessage()


@without_tensorrt
def test_cli_tensorrt_without_tensorrt_is_one_line_exit_2(yolox_bundle, assets, tmp_path, capsys):
    code = main(["replay", str(assets / "images/fastestdet_people_indoor.jpg"), "--bundle", str(yolox_bundle.root),
                 "--out", str(tmp_path), "--backend", "tensorrt"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["edge: error: --backend tensorrt: TensorRT is not installed"]


@pytest.fixture
def tensorrt_present(monkeypatch):
    """Makes this machine look like a TensorRT 10.3 Orin to the decision; nothing here reaches TensorRT."""
    monkeypatch.setattr("edge.backends.tensorrt.runtime_target", lambda: ORIN)


def write_tagged(bundle, target=ORIN) -> Path:
    shape = bundle.input.shape
    tag = EngineTag(bundle.name, sha256_file(bundle.file("model")), target, EngineOptions("fp16"),
                    (ProfileShape(bundle.input.name, shape, shape, shape),))
    return write_engine(engine_folder(bundle), tag, b"placeholder, not a TensorRT plan")


@pytest.fixture
def bundle_copy(yolox_bundle, tmp_path):
    shutil.copytree(yolox_bundle.root, tmp_path / "bundle")
    return load_bundle(tmp_path / "bundle")


def test_facts_check_each_engine_against_the_bundle_and_machine(bundle_copy, tensorrt_present):
    fits = write_tagged(bundle_copy)
    stale = write_tagged(bundle_copy, dataclasses.replace(ORIN, tensorrt="8.6.2.3"))
    unavailable, candidates = gather_facts(bundle_copy)
    assert unavailable is None
    problems = {c.path: c.problems for c in candidates}
    assert problems[fits] == ()
    assert problems[stale] == ("it was built with TensorRT 8.6.2.3, this machine has 10.3.0",)


def test_a_stale_engine_falls_back_with_a_warning_when_builds_are_off(bundle_copy, tensorrt_present, caplog):
    write_tagged(bundle_copy, dataclasses.replace(ORIN, compute_capability="7.2", gpu="Xavier"))
    backend = open_backend(bundle_copy, "auto", allow_build=False)
    assert isinstance(backend, OnnxRuntimeBackend)
    backend.close()
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "built for Xavier" in warning[0] and "builds are not allowed" in warning[0]


@without_tensorrt
def test_a_failed_rebuild_falls_back_and_says_why(bundle_copy, tensorrt_present, caplog):
    write_tagged(bundle_copy, dataclasses.replace(ORIN, tensorrt="8.6.2.3"))
    backend = open_backend(bundle_copy, "auto")
    assert isinstance(backend, OnnxRuntimeBackend)
    backend.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "rebuilding it from the bundle's ONNX" in warnings[0]
    assert "TensorRT failed (TensorRT is not installed" in warnings[1]
    with pytest.raises(UsageError, match="TensorRT is not installed"):
        open_backend(bundle_copy, "tensorrt")


def test_no_engine_where_tensorrt_could_run_is_a_warning(bundle_copy, tensorrt_present, caplog):
    backend = open_backend(bundle_copy, "auto")
    assert isinstance(backend, OnnxRuntimeBackend)
    backend.close()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "ONNX Runtime: no TensorRT engine for this bundle (build one with 'edge build-engine" in warning

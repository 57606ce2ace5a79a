"""The engine builder's calls on each TensorRT release, recorded against a stand-in (tests/fake_tensorrt.py).

TensorRT is not installed here: these tests check which API calls ``build_engine`` makes for 8.5/8.6, 10.x
and 11.x, and what it writes (name, tag, timing cache). The "engine" they produce is placeholder bytes, and
nothing here claims TensorRT built or ran anything. The CLI test at the end runs without the stand-in.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys

import numpy as np
import pytest
from fake_tensorrt import PLACEHOLDER_PLAN, Layer, Network, make_tensorrt

from edge.backends.builder import build_engine, profile_range
from edge.bundle import load_bundle, sha256_file
from edge.cli import main
from edge.engines import EngineOptions, ProfileShape, Target, read_tag
from edge.errors import BadInputError, UsageError

STATIC = [("images", (1, 3, 416, 416))]
DYNAMIC = [("images", (-1, 3, 416, 416))]
QDQ = [Layer("QUANTIZE"), Layer("DEQUANTIZE"), Layer("CONVOLUTION")]
HALF = [Layer("CONVOLUTION", ("HALF",))]


@pytest.fixture
def bundle(yolox_bundle, tmp_path):
    shutil.copytree(yolox_bundle.root, tmp_path / "bundle")
    return load_bundle(tmp_path / "bundle")


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """Installs a TensorRT stand-in of the given release; returns its module (with ``.calls``)."""
    def install(version, inputs=STATIC, layers=None, parse_errors=()):
        network = Network(inputs, layers or [Layer("CONVOLUTION")])
        module = make_tensorrt(version, network, parse_errors)
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        monkeypatch.setattr("edge.backends.builder.current_target",
                            lambda: Target(version, "8.7", "Orin", "NVIDIA Jetson AGX Orin Developer Kit"))
        return module
    return install


def build(bundle, tmp_path, precision="fp16", **options):
    return build_engine(bundle, EngineOptions(precision, **options), timing_cache=tmp_path / "timing.cache")


def calls_named(module, name):
    return [call[1:] for call in module.calls if call[0] == name]


@pytest.mark.parametrize("version, network_flags", [("8.5.2.2", 1), ("8.6.2.3", 1), ("10.3.0", 0)])
def test_fp16_on_weakly_typed_releases(bundle, tmp_path, stand_in, version, network_flags):
    trt = stand_in(version)
    path = build(bundle, tmp_path)
    assert calls_named(trt, "create_network") == [(network_flags,)]  # 1 << EXPLICIT_BATCH before 10
    assert calls_named(trt, "parse_from_file") == [(str(bundle.file("model")),)]
    assert calls_named(trt, "set_memory_pool_limit") == [("WORKSPACE", 256 << 20)]
    assert calls_named(trt, "set_flag") == [("FP16",)]
    assert calls_named(trt, "set_timing_cache") == [(True, False)]
    assert calls_named(trt, "build_serialized_network") == [(True,)]
    assert not calls_named(trt, "add_optimization_profile")  # static input: no profile
    tag = read_tag(path)
    assert path.read_bytes() == PLACEHOLDER_PLAN and path.parent == bundle.root / "engines"
    assert path.name.startswith(f"yolox_nano.fp16.trt{version}.sm87.")
    assert tag.onnx_sha256 == sha256_file(bundle.file("model")) and tag.options == EngineOptions("fp16")
    assert tag.profile == (ProfileShape("images", (1, 3, 416, 416), (1, 3, 416, 416), (1, 3, 416, 416)),)


def test_trt_11_sets_no_precision_flag_and_needs_typed_onnx(bundle, tmp_path, stand_in):
    trt = stand_in("11.0.0", layers=HALF)
    build(bundle, tmp_path)
    assert calls_named(trt, "create_network") == [(0,)] and not calls_named(trt, "set_flag")
    stand_in("11.0.0")
    with pytest.raises(UsageError, match="no FP16 flag"):
        build(bundle, tmp_path)


@pytest.mark.parametrize("version, flags", [("8.6.2.3", [("INT8",), ("FP16",)]), ("10.3.0", [("INT8",), ("FP16",)]),
                                            ("11.0.0", [])])
def test_qdq_int8_needs_no_calibrator(bundle, tmp_path, stand_in, version, flags):
    trt = stand_in(version, layers=QDQ)
    build(bundle, tmp_path, "int8")
    assert calls_named(trt, "set_flag") == flags
    assert not calls_named(trt, "config.int8_calibrator =")


def test_dynamic_batch_gets_a_profile(bundle, tmp_path, stand_in):
    trt = stand_in("10.3.0", inputs=DYNAMIC)
    tag = read_tag(build(bundle, tmp_path))
    assert calls_named(trt, "profile.set_shape") == [("images", (1, 3, 416, 416), (1, 3, 416, 416), (1, 3, 416, 416))]
    assert len(calls_named(trt, "add_optimization_profile")) == 1
    assert tag.profile[0].name == "images"


def test_profile_ranges():
    assert profile_range("x", (-1, 3, 64, 64), (4, 3, 64, 64)) == ProfileShape(
        "x", (1, 3, 64, 64), (4, 3, 64, 64), (4, 3, 64, 64))
    assert profile_range("x", (1, 3, -1, -1), (1, 3, 64, 32)).min == (1, 3, 64, 32)
    with pytest.raises(BadInputError, match="does not fit the ONNX's"):
        profile_range("x", (1, 3, 64, 64), (1, 3, 32, 32))


def test_dla_core_with_gpu_fallback(bundle, tmp_path, stand_in):
    trt = stand_in("8.5.2.2")
    path = build(bundle, tmp_path, dla_core=1)
    assert calls_named(trt, "config.default_device_type =") == [("DLA",)]
    assert calls_named(trt, "config.DLA_core =") == [(1,)]
    assert calls_named(trt, "set_flag") == [("FP16",), ("GPU_FALLBACK",)]
    assert ".dla1." in path.name and read_tag(path).options.dla_core == 1
    with pytest.raises(UsageError, match="has 2 DLA core"):
        build(bundle, tmp_path, dla_core=2)


def test_timing_cache_is_reused_across_builds(bundle, tmp_path, stand_in):
    trt = stand_in("10.3.0")
    build(bundle, tmp_path)
    assert calls_named(trt, "create_timing_cache") == [(b"",)]
    assert (tmp_path / "timing.cache").read_bytes() == b"+timings"
    trt = stand_in("10.3.0")
    build(bundle, tmp_path, workspace_mib=64)
    assert calls_named(trt, "create_timing_cache") == [(b"+timings",)]
    assert calls_named(trt, "set_memory_pool_limit") == [("WORKSPACE", 64 << 20)]


def test_parser_errors_name_the_model(bundle, tmp_path, stand_in):
    stand_in("10.3.0", parse_errors=("node 12 (NonMaxSuppression): unsupported",))
    with pytest.raises(BadInputError, match="model.onnx: TensorRT's ONNX parser rejects.*NonMaxSuppression"):
        build(bundle, tmp_path)


def test_calibrated_int8_needs_frames_or_a_cache(bundle, tmp_path, stand_in):
    trt = stand_in("8.6.2.3")
    with pytest.raises(UsageError, match="--calib SOURCE"):
        build(bundle, tmp_path, "int8")
    assert not calls_named(trt, "build_serialized_network")


def test_calibrated_int8_reads_the_given_batches(bundle, tmp_path, stand_in):
    trt = stand_in("8.6.2.3", inputs=DYNAMIC)
    batches = [np.full((1, 3, 416, 416), i, np.float32) for i in range(3)]
    path = build_engine(bundle, EngineOptions("int8"), timing_cache=tmp_path / "t.cache", calibration=batches)
    [(calibrator,)] = calls_named(trt, "config.int8_calibrator =")
    assert isinstance(calibrator, trt.IInt8EntropyCalibrator2) and calibrator.reader is batches
    assert calibrator.cache_path == bundle.root / "engines/yolox_nano.calibration.cache"
    assert len(calls_named(trt, "set_calibration_profile")) == 1
    assert calls_named(trt, "set_flag") == [("INT8",), ("FP16",)]
    assert read_tag(path).calibration_sha256 is None  # the stand-in's build asked for no batch, wrote no cache


def test_build_engine_cli_calibrates_on_the_sampled_footage(bundle, tmp_path, stand_in, assets, capsys):
    trt = stand_in("8.6.2.3", inputs=DYNAMIC)
    source = str(assets / "videos/bgslibrary_highway_traffic_320x240.avi")
    assert main(["build-engine", str(bundle.root), "--precision", "int8", "--calib", source, "--calib-frames", "5",
                 "--timing-cache", str(tmp_path / "t.cache")]) == 0
    [(calibrator,)] = calls_named(trt, "config.int8_calibrator =")
    feed = calibrator.reader  # made by calibration/tensorrt_feed.py from the footage
    rest = list(feed)  # the calibrator read the first batch ahead, to refuse footage without frames early
    assert len(rest) == 4 and feed.frames == 5 and feed.shape == (1, 3, 416, 416)
    assert all(b.shape == (1, 3, 416, 416) and b.dtype == np.float32 for b in rest)
    assert not np.array_equal(rest[0], rest[3])
    assert "yolox_nano.int8.trt8.6.2.3" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_cli_without_tensorrt_is_one_line(bundle, capsys):
    code = main(["build-engine", str(bundle.root), "--workspace", "128"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("edge: error: TensorRT is not installed")
    with pytest.raises(SystemExit):
        main(["build-engine", str(bundle.root), "--workspace", "0"])

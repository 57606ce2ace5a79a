"""The engine builder's calls on each TensorRT release, against the strict stand-in (tests/fake_tensorrt.py).

TensorRT is not installed here: these tests check which API calls ``build_engine`` makes for 8.5/8.6, 10.x
and 11.x, with the real member lists and argument types of each release, and what it writes (name, tag,
timing cache, calibration cache, lock). The "engine" they produce is placeholder bytes, and nothing here
claims TensorRT built or ran anything. The CLI test at the end runs without the stand-in.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import threading

import fake_pycuda
import numpy as np
import pytest
from fake_tensorrt import CACHE_MAGIC, PLACEHOLDER_PLAN, Layer, Network, make_tensorrt

from edge.backends import builder
from edge.backends.builder import build_engine, profile_range
from edge.bundle import load_bundle, sha256_file
from edge.cli import main
from edge.engines import EngineOptions, ProfileShape, Target, read_tag
from edge.errors import BadInputError, UsageError

STATIC = [("images", (1, 3, 416, 416))]
DYNAMIC = [("images", (-1, 3, 416, 416))]
QDQ = [Layer("QUANTIZE"), Layer("DEQUANTIZE"), Layer("CONVOLUTION")]
HALF = [Layer("CONVOLUTION", ("HALF",))]
ORIN = "NVIDIA Jetson AGX Orin Developer Kit"


@pytest.fixture
def bundle(yolox_bundle, tmp_path):
    shutil.copytree(yolox_bundle.root, tmp_path / "bundle")
    return load_bundle(tmp_path / "bundle")


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    """Installs a TensorRT stand-in of the given release (and pycuda's, for the calibrator); returns its module
    (with ``.calls``)."""
    cuda = fake_pycuda.install(monkeypatch)

    def install(version, inputs=STATIC, layers=None, parse_errors=(), plugins=()):
        network = Network(inputs, layers or [Layer("CONVOLUTION")], plugins=plugins)
        module = make_tensorrt(version, network, parse_errors)
        module.cuda = cuda
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        monkeypatch.setattr("edge.backends.builder.current_target", lambda: Target(version, "8.7", "Orin", ORIN))
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
    assert path.read_bytes().startswith(PLACEHOLDER_PLAN) and path.parent == bundle.root / "engines"
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
    saved = (tmp_path / "timing.cache").read_bytes()
    assert saved.startswith(CACHE_MAGIC) and saved.endswith(b"+timings")
    trt = stand_in("10.3.0")
    build(bundle, tmp_path, workspace_mib=64)
    assert calls_named(trt, "create_timing_cache") == [(saved,)]
    assert calls_named(trt, "set_timing_cache") == [(True, False)]
    assert calls_named(trt, "set_memory_pool_limit") == [("WORKSPACE", 64 << 20)]


@pytest.mark.parametrize("cache", [b"\x00garbage from a torn write", CACHE_MAGIC + b"sm72|timings of a Xavier"])
def test_an_unusable_timing_cache_falls_back_to_an_empty_one(bundle, tmp_path, stand_in, caplog, cache):
    """Defect 9: set_timing_cache's result was ignored, so a corrupt cache file failed every build."""
    (tmp_path / "timing.cache").write_bytes(cache)
    trt = stand_in("10.3.0")
    path = build(bundle, tmp_path)
    assert calls_named(trt, "create_timing_cache") == [(cache,), (b"",)]
    assert calls_named(trt, "build_serialized_network") == [(True,)] and path.is_file()
    assert "timing cache unusable" in caplog.text
    assert (tmp_path / "timing.cache").read_bytes().startswith(CACHE_MAGIC + b"sm87|")  # replaced by a good one


def test_plugins_are_registered_before_parsing(bundle, tmp_path, stand_in):
    """Defect 3: without init_libnvinfer_plugins, ONNX with standard plugins (EfficientNMS_TRT) does not parse."""
    trt = stand_in("10.3.0", plugins=("EfficientNMS_TRT",))
    path = build(bundle, tmp_path)
    assert trt.calls.index(("init_libnvinfer_plugins", "")) < trt.calls.index(("parse_from_file", str(
        bundle.file("model"))))
    assert path.is_file()


def test_parser_errors_name_the_model(bundle, tmp_path, stand_in):
    stand_in("10.3.0", parse_errors=("node 12 (NonMaxSuppression): unsupported",))
    with pytest.raises(BadInputError, match="model.onnx: TensorRT's ONNX parser rejects.*NonMaxSuppression"):
        build(bundle, tmp_path)


def test_calibrated_int8_needs_frames_or_a_cache(bundle, tmp_path, stand_in):
    trt = stand_in("8.6.2.3")
    with pytest.raises(UsageError, match="no calibration cache for this ONNX.*--calib SOURCE"):
        build(bundle, tmp_path, "int8")
    assert not calls_named(trt, "build_serialized_network")


def test_calibrated_int8_reads_the_given_batches(bundle, tmp_path, stand_in):
    trt = stand_in("8.6.2.3", inputs=DYNAMIC)
    batches = [np.full((1, 3, 416, 416), i, np.float32) for i in range(3)]
    path = build_engine(bundle, EngineOptions("int8"), timing_cache=tmp_path / "t.cache", calibration=batches)
    [(calibrator,)] = calls_named(trt, "config.int8_calibrator =")
    assert isinstance(calibrator, trt.IInt8EntropyCalibrator2) and calibrator.reader is batches
    onnx_sha256 = sha256_file(bundle.file("model"))
    assert calibrator.cache_path == bundle.root / f"engines/yolox_nano.{onnx_sha256[:12]}.calibration.cache"
    assert len(calls_named(trt, "set_calibration_profile")) == 1
    assert calls_named(trt, "set_flag") == [("INT8",), ("FP16",)]
    assert calibrator.batches == 3 and len(set(trt.cuda.uploads)) == 3  # the stand-in build read every batch
    assert read_tag(path).calibration_sha256 == sha256_file(calibrator.cache_path)


def test_a_changed_onnx_does_not_reuse_the_old_calibration(bundle, tmp_path, stand_in):
    """Defect 8: the calibration cache was named by the bundle only, so a rebuild after the ONNX changed
    calibrated from the old model's table."""
    stand_in("8.6.2.3")
    first = build_engine(bundle, EngineOptions("int8"), timing_cache=tmp_path / "t.cache",
                         calibration=[np.zeros((1, 3, 416, 416), np.float32)])
    assert read_tag(first).calibration_sha256 is not None
    trt = stand_in("8.6.2.3")
    build(bundle, tmp_path, "int8")  # same ONNX, no frames: the cached table serves
    assert calls_named(trt, "build_serialized_network") == [(True,)] and not trt.cuda.uploads[1:]
    onnx = bundle.file("model")
    onnx.write_bytes(onnx.read_bytes() + b"\x00")  # the ONNX changes (sha256 with it)
    trt = stand_in("8.6.2.3")
    with pytest.raises(UsageError, match="no calibration cache for this ONNX"):
        build(bundle, tmp_path, "int8")
    assert not calls_named(trt, "build_serialized_network")


def test_build_engine_cli_calibrates_on_the_sampled_footage(bundle, tmp_path, stand_in, assets, capsys):
    trt = stand_in("8.6.2.3", inputs=DYNAMIC)
    source = str(assets / "videos/bgslibrary_highway_traffic_320x240.avi")
    assert main(["build-engine", str(bundle.root), "--precision", "int8", "--calib", source, "--calib-frames", "5",
                 "--timing-cache", str(tmp_path / "t.cache")]) == 0
    [(calibrator,)] = calls_named(trt, "config.int8_calibrator =")
    feed = calibrator.reader  # made by calibration/tensorrt_feed.py from the footage
    assert feed.frames == 5 and feed.shape == (1, 3, 416, 416) and calibrator.batches == 5
    assert len(set(trt.cuda.uploads)) == 5  # five different frames reached the (stand-in) device buffer
    assert "yolox_nano.int8.trt8.6.2.3" in capsys.readouterr().out


def test_a_planted_misspelling_is_caught_on_the_release_that_lacks_the_name(bundle, tmp_path, stand_in,
                                                                            monkeypatch):
    """The stand-in has each release's real members: max_workspace_size is still in 8.6 (deprecated) and gone
    from 10.x, as in the bindings, so a builder that set it would fail here as on a JetPack 6.1 device."""
    attach = builder._attach_timing_cache

    def misspelled(config, path):
        config.max_workspace_size = 256 << 20  # the pre-8.4 API
        attach(config, path)
    monkeypatch.setattr(builder, "_attach_timing_cache", misspelled)
    stand_in("8.6.2.3")
    assert build(bundle, tmp_path).is_file()
    stand_in("10.3.0")
    with pytest.raises(AttributeError, match="'tensorrt.tensorrt.IBuilderConfig' object has no attribute "
                                             "'max_workspace_size'"):
        build(bundle, tmp_path)


def test_the_stand_in_rejects_wrong_names_and_types_per_release():
    old, new, typed = (make_tensorrt(v, Network(STATIC)) for v in ("8.6.1.6", "10.3.0", "11.0.0"))
    assert old.BuilderFlag.FP16 and new.BuilderFlag.FP16 and typed.BuilderFlag.GPU_FALLBACK
    with pytest.raises(AttributeError, match="FP16"):
        typed.BuilderFlag.FP16  # noqa: B018 (strongly typed only)
    config = new.Builder(new.Logger()).create_builder_config()
    with pytest.raises(TypeError):
        config.set_flag("FP16")  # an enum, not its name
    with pytest.raises(TypeError):
        config.int8_calibrator = "calibrator"
    with pytest.raises(TypeError):
        config.DLA_core = "0"
    with pytest.raises(AttributeError):
        config.set_workspace_size(1)  # not a member: misspelt
    with pytest.raises(AttributeError):
        typed.Builder(typed.Logger()).create_builder_config().int8_calibrator = None  # gone in 11
    assert not hasattr(typed, "IInt8EntropyCalibrator2")
    with pytest.raises(NotImplementedError, match="does not model IBuilderConfig.engine_capability"):
        config.engine_capability  # noqa: B018 (a real member the stand-in leaves out)
    with pytest.raises(TypeError):
        new.nptype(new.DataType.BF16)
    assert new.nptype(new.DataType.INT64) is np.int64


def test_dla_is_not_refused_on_trt_11(bundle, tmp_path, stand_in):
    """Defect 10: TensorRT 11 keeps DeviceType.DLA, DLA_core and GPU_FALLBACK; the builder says how many DLA
    cores there are."""
    trt = stand_in("11.0.0", layers=HALF)
    path = build(bundle, tmp_path, dla_core=0)
    assert calls_named(trt, "config.default_device_type =") == [("DLA",)]
    assert calls_named(trt, "set_flag") == [("GPU_FALLBACK",)] and ".dla0." in path.name


def test_concurrent_builds_of_one_engine_build_it_once(bundle, tmp_path, stand_in, caplog):
    """Defect 8: two processes starting at once both built the engine (double the memory on a small module),
    and interleaved writes could leave a tag whose plan sha256 was the other build's. Now the second waits for
    the first's lock, then finds the engine it wrote and builds nothing."""
    trt = stand_in("10.3.0")
    inside, finish = threading.Event(), threading.Event()
    trt.while_building = lambda: (inside.set(), finish.wait())
    caplog.set_level(logging.WARNING)
    paths = []

    def start():
        thread = threading.Thread(target=lambda: paths.append(build_engine(
            bundle, EngineOptions("fp16"), timing_cache=tmp_path / "t.cache", reuse=True)))
        thread.start()
        return thread

    first = start()
    inside.wait()  # the first build is running
    second = start()
    builds = lambda: len(calls_named(trt, "build_serialized_network"))  # noqa: E731
    while "another process is building this engine" not in caplog.text and builds() < 2 and second.is_alive():
        second.join(0.01)  # until the second waits for the lock (or, unlocked, starts building too)
    finish.set()
    first.join()
    second.join()
    assert builds() == 1
    assert len(paths) == 2 and paths[0] == paths[1] and read_tag(paths[0]).plan_sha256 == sha256_file(paths[0])


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_cli_without_tensorrt_is_one_line(bundle, capsys):
    code = main(["build-engine", str(bundle.root), "--workspace", "128"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("edge: error: TensorRT is not installed")
    with pytest.raises(SystemExit):
        main(["build-engine", str(bundle.root), "--workspace", "0"])

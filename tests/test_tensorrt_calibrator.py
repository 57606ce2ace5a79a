"""TensorRT's INT8 calibrator (edge/backends/trt_calibrator.py).

The cache helpers are tested for real, and the calibrator reads frames of the sample video preprocessed by
the YOLOX-nano bundle's own spec (the feed is tests/test_tensorrt_feed.py's). TensorRT is not installed here:
the ``IInt8EntropyCalibrator2`` subclass is driven as TensorRT would drive it, against the stand-ins of
tests/fake_tensorrt.py and tests/fake_pycuda.py (per-thread context stacks, device memory in host bytes),
which check this module's calls (one allocation, one pointer per batch, ``None`` at the end, the cache
callbacks, no context left pushed) and nothing of TensorRT's calibration itself. The test marked ``gpu``
copies the batches to a real CUDA device with pycuda; no test here claims that TensorRT calibrated.
"""

from __future__ import annotations

import gc
import shutil
import sys
import threading

import fake_pycuda
import numpy as np
import pytest
from fake_tensorrt import Network, make_tensorrt

from calibration.tensorrt_feed import calibration_batches, calibration_feed
from edge.backends.builder import build_engine
from edge.backends.trt_calibrator import make_entropy_calibrator, read_calibration_cache, write_calibration_cache
from edge.bundle import load_bundle
from edge.engines import EngineOptions, Target
from edge.errors import BadInputError, EdgeError, UsageError

VIDEO = "videos/bgslibrary_highway_traffic_320x240.avi"
FRAMES = 10


@pytest.fixture(scope="module")
def tensors(yolox_bundle, assets):
    """The first FRAMES input tensors of the highway video, preprocessed as at run time (1 × 3 × 416 × 416)."""
    return list(calibration_batches(yolox_bundle, [str(assets / VIDEO)], FRAMES))


@pytest.fixture
def trt(monkeypatch):
    """A TensorRT 8.6 stand-in installed as ``tensorrt``."""
    def install(version="8.6.1.6"):
        module = make_tensorrt(version, Network([("images", (1, 3, 416, 416))]))
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        return module
    return install


@pytest.fixture
def cuda(monkeypatch):
    return fake_pycuda.install(monkeypatch)


def allocations(cuda):
    return list(cuda.allocations.values())


def test_cache_round_trip_is_atomic(tmp_path):
    path = tmp_path / "yolox_nano.calibration.cache"
    assert read_calibration_cache(path) is None
    path.write_bytes(b"")
    assert read_calibration_cache(path) is None  # an empty file is no cache
    table = b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"
    write_calibration_cache(path, memoryview(table))  # TensorRT hands the cache over as a buffer
    assert read_calibration_cache(path) == table
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_calibrator_feeds_one_device_buffer_and_writes_the_cache(tensors, tmp_path, trt, cuda):
    module = trt()
    cache = tmp_path / "calibration.cache"
    calibrator = make_entropy_calibrator(iter(tensors), cache)
    assert isinstance(calibrator, module.IInt8EntropyCalibrator2)
    assert ("IInt8EntropyCalibrator2.__init__",) in module.calls
    assert calibrator.get_batch_size() == 1 and calibrator.read_calibration_cache() is None
    for tensor in tensors:
        pointers = calibrator.get_batch(["images"])
        [device] = allocations(cuda)  # allocated once
        assert pointers == [int(device)] and cuda.depth() == 0  # the context is current only while copying
        np.testing.assert_array_equal(device.data.view(np.float32).reshape(tensor.shape), tensor)
    assert calibrator.get_batch(["images"]) is None
    assert device.freed and calibrator._context is None
    calibrator.write_calibration_cache(memoryview(b"scales"))
    assert cache.read_bytes() == b"scales" and calibrator.read_calibration_cache() == b"scales"


def test_calibrator_with_a_cache_needs_no_frames_and_no_gpu(tmp_path, trt, cuda):
    trt("10.3.0")
    cache = tmp_path / "calibration.cache"
    cache.write_bytes(b"scales")
    calibrator = make_entropy_calibrator(iter(()), cache)
    assert calibrator.read_calibration_cache() == b"scales" and not allocations(cuda)


def test_calibrator_without_frames_or_cache_says_so(tmp_path, trt, cuda):
    trt()
    with pytest.raises(BadInputError, match="gave no frames, and there is no calibration cache"):
        make_entropy_calibrator(iter(()), tmp_path / "calibration.cache")
    assert not allocations(cuda)


def test_trt_11_has_no_calibrator(tmp_path, trt):
    trt("11.0.0")
    with pytest.raises(UsageError, match=r"TensorRT 11.0.0 has no IInt8EntropyCalibrator2.*edge quantize"):
        make_entropy_calibrator(iter(()), tmp_path / "calibration.cache")


@pytest.fixture
def bundle(yolox_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr("edge.backends.builder.current_target", lambda: Target("8.6.1.6", "8.7", "Orin", "Orin"))
    return load_bundle(shutil.copytree(yolox_bundle.root, tmp_path / "bundle"))


def test_build_engine_attaches_the_calibrator_to_the_bundle_cache(bundle, assets, tmp_path, trt, cuda):
    module = trt()
    build_engine(bundle, EngineOptions("int8"), timing_cache=tmp_path / "timing.cache",
                 calibration=calibration_feed(bundle, [str(assets / VIDEO)], 3))
    [(calibrator,)] = [call[1:] for call in module.calls if call[0] == "config.int8_calibrator ="]
    assert isinstance(calibrator, module.IInt8EntropyCalibrator2)
    assert calibrator.cache_path.parent == bundle.root / "engines"
    assert calibrator.batches == 3 and calibrator.reader.frames == 3  # the stand-in's build read them all
    assert calibrator.cache_path.read_bytes() == b"stand-in calibration table"


def test_a_failed_build_leaves_no_context_pushed_and_frees_the_buffer(bundle, assets, tmp_path, trt, cuda):
    """Defect 7: the calibrator kept the CUDA context pushed from its first batch to its last, so a build
    that failed in between left it pushed, and pycuda aborted the process at exit, hiding the real error."""
    module = trt()
    module.calibration_fails_after = 2  # TensorRT gives up after the second batch
    with pytest.raises(EdgeError, match="TensorRT could not build an engine"):
        build_engine(bundle, EngineOptions("int8"), timing_cache=tmp_path / "timing.cache",
                     calibration=calibration_feed(bundle, [str(assets / VIDEO)], 5))
    [device] = allocations(cuda)
    assert cuda.depth() == 0 and device.freed


def test_calibration_on_a_worker_thread_leaves_its_stack_empty(tensors, tmp_path, trt, cuda):
    trt()
    calibrator = make_entropy_calibrator(iter(tensors[:2]), tmp_path / "calibration.cache")
    worker = threading.Thread(target=lambda: [calibrator.get_batch(["images"]) for _ in range(2)], name="builder")
    worker.start()
    worker.join()
    del worker
    gc.collect()
    assert cuda.aborts == [] and calibrator.batches == 2


@pytest.mark.gpu
def test_batches_reach_the_gpu(tmp_path, trt):
    """Real pycuda on a real device (the TensorRT base class is still the stand-in): each batch lands in the
    device buffer whose address get_batch returns."""
    driver = pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    from edge.gpu.cuda import CudaContext

    try:
        CudaContext().close()
    except Exception as e:  # no driver, no device: pycuda raises its own error types
        pytest.skip(f"no usable CUDA device ({type(e).__name__}: {e})")
    trt()
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((2, 3, 64, 48), dtype=np.float32) for _ in range(3)]
    calibrator = make_entropy_calibrator(iter(batches), tmp_path / "calibration.cache")
    for batch in batches:
        [pointer] = calibrator.get_batch(["images"])
        assert pointer == int(calibrator._device)
        copied = np.empty_like(batch)
        with calibrator._context.active():  # get_batch left no context current on this thread
            driver.memcpy_dtoh(copied, calibrator._device)
        np.testing.assert_array_equal(copied, batch)
    assert calibrator.get_batch(["images"]) is None and calibrator._device is None

"""TensorRT's INT8 calibrator (edge/backends/trt_calibrator.py).

The cache helpers are tested for real, and the calibrator reads frames of the sample video preprocessed by
the YOLOX-nano bundle's own spec (the feed is tests/test_tensorrt_feed.py's). TensorRT is not installed here:
the ``IInt8EntropyCalibrator2`` subclass is driven as TensorRT would drive it, against the stand-in of
tests/fake_tensorrt.py and a host-memory stand-in for pycuda's device allocation, which checks this module's
calls (one allocation, one pointer per batch, ``None`` at the end, the cache callbacks) and nothing of
TensorRT's calibration itself. The test marked ``gpu`` copies the batches to a real CUDA device with pycuda;
no test here claims that TensorRT calibrated.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from fake_tensorrt import Network, make_tensorrt

from calibration.tensorrt_feed import calibration_batches, calibration_feed
from edge.backends import trt_calibrator
from edge.backends.builder import build_engine
from edge.backends.trt_calibrator import make_entropy_calibrator, read_calibration_cache, write_calibration_cache
from edge.bundle import load_bundle
from edge.engines import EngineOptions, Target
from edge.errors import BadInputError, UsageError

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


class HostAllocation:
    """Stands in for pycuda's ``DeviceAllocation``: host bytes at a fixed address."""

    def __init__(self, nbytes):
        self.data = np.zeros(nbytes, np.uint8)
        self.freed = False

    def __int__(self):
        return self.data.ctypes.data

    def free(self):
        self.freed = True


class HostCuda:
    """Stands in for ``CudaContext`` (and its ``pycuda.driver``) where no GPU is: allocations are host bytes."""

    opened: list[HostCuda] = []

    def __init__(self):
        self.cuda = self
        self.allocations: list[HostAllocation] = []
        self.closed = False
        HostCuda.opened.append(self)

    def mem_alloc(self, nbytes):
        self.allocations.append(HostAllocation(nbytes))
        return self.allocations[-1]

    def memcpy_htod(self, device, array):
        device.data[:] = np.frombuffer(array.tobytes(), np.uint8)  # fails unless the sizes match exactly

    def close(self):
        self.closed = True


@pytest.fixture
def host_cuda(monkeypatch):
    HostCuda.opened = []
    monkeypatch.setattr(trt_calibrator, "CudaContext", HostCuda)
    return HostCuda.opened


def test_cache_round_trip_is_atomic(tmp_path):
    path = tmp_path / "yolox_nano.calibration.cache"
    assert read_calibration_cache(path) is None
    path.write_bytes(b"")
    assert read_calibration_cache(path) is None  # an empty file is no cache
    table = b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n"
    write_calibration_cache(path, memoryview(table))  # TensorRT hands the cache over as a buffer
    assert read_calibration_cache(path) == table
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_calibrator_feeds_one_device_buffer_and_writes_the_cache(tensors, tmp_path, trt, host_cuda):
    module = trt()
    cache = tmp_path / "calibration.cache"
    calibrator = make_entropy_calibrator(iter(tensors), cache)
    assert isinstance(calibrator, module.IInt8EntropyCalibrator2)
    assert ("IInt8EntropyCalibrator2.__init__",) in module.calls
    assert calibrator.get_batch_size() == 1 and calibrator.read_calibration_cache() is None
    for tensor in tensors:
        pointers = calibrator.get_batch(["images"])
        device = host_cuda[0].allocations[0]
        assert pointers == [int(device)]
        np.testing.assert_array_equal(device.data.view(np.float32).reshape(tensor.shape), tensor)
    assert len(host_cuda) == 1 and len(host_cuda[0].allocations) == 1  # allocated once
    assert calibrator.get_batch(["images"]) is None
    assert device.freed and host_cuda[0].closed
    calibrator.write_calibration_cache(memoryview(b"scales"))
    assert cache.read_bytes() == b"scales" and calibrator.read_calibration_cache() == b"scales"


def test_calibrator_with_a_cache_needs_no_frames_and_no_gpu(tmp_path, trt, host_cuda):
    trt("10.3.0")
    cache = tmp_path / "calibration.cache"
    cache.write_bytes(b"scales")
    calibrator = make_entropy_calibrator(iter(()), cache)
    assert calibrator.read_calibration_cache() == b"scales" and not host_cuda


def test_calibrator_without_frames_or_cache_says_so(tmp_path, trt, host_cuda):
    trt()
    with pytest.raises(BadInputError, match="gave no frames, and there is no calibration cache"):
        make_entropy_calibrator(iter(()), tmp_path / "calibration.cache")
    assert not host_cuda


def test_trt_11_has_no_calibrator(tmp_path, trt):
    trt("11.0.0")
    with pytest.raises(UsageError, match=r"TensorRT 11.0.0 has no IInt8EntropyCalibrator2.*edge quantize"):
        make_entropy_calibrator(iter(()), tmp_path / "calibration.cache")


def test_build_engine_attaches_the_calibrator_to_the_bundle_cache(yolox_bundle, assets, tmp_path, trt,
                                                                   host_cuda, monkeypatch):
    bundle = load_bundle(shutil.copytree(yolox_bundle.root, tmp_path / "bundle"))
    module = trt()
    monkeypatch.setattr("edge.backends.builder.current_target", lambda: Target("8.6.1.6", "8.7", "Orin", "Orin"))
    build_engine(bundle, EngineOptions("int8"), timing_cache=tmp_path / "timing.cache",
                 calibration=calibration_feed(bundle, [str(assets / VIDEO)], 3))
    [(calibrator,)] = [call[1:] for call in module.calls if call[0] == "config.int8_calibrator ="]
    assert isinstance(calibrator, module.IInt8EntropyCalibrator2)
    assert calibrator.cache_path == bundle.root / "engines/yolox_nano.calibration.cache"
    assert [calibrator.get_batch(["images"]) is not None for _ in range(4)] == [True, True, True, False]
    assert calibrator.batches == 3 and calibrator.reader.frames == 3


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
        driver.memcpy_dtoh(copied, calibrator._device)
        np.testing.assert_array_equal(copied, batch)
    assert calibrator.get_batch(["images"]) is None and calibrator._device is None

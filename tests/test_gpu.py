"""The GPU path on a real CUDA device: pycuda kernels against the CPU reference, and the TensorRT backend's
CUDA memory handling (page-locked buffers, streams, async copies, two slots in flight).

Marked ``gpu`` and skipped where pycuda or a CUDA device is missing. There is no TensorRT on the machines
these run on: the backend tests drive TensorRtBackend with the stand-in engine of tests/fake_tensorrt.py,
whose ``execute_async_v3`` here enqueues a real device-to-device copy on the slot's stream, so everything
around the engine is real CUDA (pycuda's per-thread context stacks included) while the engine itself is not
TensorRT. benchmarks/gpu_check.sh runs this file on a lent GPU machine.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge import cuda_info
from edge.bundle import InputSpec
from edge.decoders.segmentation import Window, nearest_tables
from edge.preprocess import Preprocessor

pytestmark = pytest.mark.gpu

SPECS = [
    InputSpec("images", (1, 3, 416, 416), "nchw", "bgr", "float32", "letterbox", 114.0),
    InputSpec("images", (1, 3, 384, 640), "nchw", "rgb", "float32", "letterbox-center", 114.0,
              (127.0,) * 3, (128.0,) * 3),
    InputSpec("images", (1, 3, 384, 384), "nchw", "rgb", "float32", "stretch", 0.0,
              (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    InputSpec("images", (1, 128, 128, 3), "nhwc", "rgb", "float32", "square-pad", 0.0, (0.0,) * 3, (255.0,) * 3),
    InputSpec("images", (1, 192, 192, 3), "nhwc", "rgb", "uint8", "stretch", 0.0),
    InputSpec("images", (1, 3, 256, 192), "nchw", "bgr", "uint8", "letterbox-center", 7.0),
]


def spec_id(spec):
    return f"{spec.layout}-{spec.color}-{spec.dtype}-{spec.resize}-{spec.width}x{spec.height}"


@pytest.fixture(scope="module")
def cuda():
    driver = pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    from edge.gpu.cuda import CudaContext

    try:
        context = CudaContext()
    except Exception as e:  # no driver, no device: pycuda raises its own error types
        pytest.skip(f"no usable CUDA device ({type(e).__name__}: {e})")
    with context.active():  # these tests call pycuda themselves, on this thread
        yield SimpleNamespace(driver=driver, context=context)
    context.close()


@pytest.fixture(scope="module")
def frames(assets):
    """Real frames of the sample video at three camera sizes, and a portrait crop."""
    capture = cv2.VideoCapture(str(assets / "videos/one-by-one-person-detection.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 300)
    ok, frame = capture.read()
    assert ok
    return {"768x432": frame, "1280x720": cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_CUBIC),
            "1920x1080": cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC),
            "300x432": np.ascontiguousarray(frame[:, 200:500])}


def run_gpu_preprocessing(cuda, preprocessor, image, spec):
    out = cuda.driver.mem_alloc(int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize)
    cuda.driver.memset_d8(out, 0xFF, int(np.prod(spec.shape)) * np.dtype(spec.dtype).itemsize)  # poison: NaN / 255
    stream = cuda.driver.Stream()
    transform = preprocessor(image, out, stream)
    stream.synchronize()
    result = np.empty(spec.shape, spec.dtype)
    cuda.driver.memcpy_dtoh(result, out)
    return transform, result


def assert_matches_cpu(result, expected, spec):
    if spec.dtype == "float32":
        assert not np.isnan(result).any()  # every element was written over the poison
    # One pixel level before normalisation at most (in practice none: the kernel uses OpenCV's integers).
    level = float(np.max(1.0 / np.asarray(spec.std)))
    difference = np.abs(result.astype(np.float64) - expected.astype(np.float64))
    assert difference.max() <= level + 1e-5
    assert (difference <= 1e-5).mean() > 0.999


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_preprocessing_matches_the_cpu_path(cuda, frames, spec):
    from edge.gpu.preprocess import GpuPreprocessor

    gpu, cpu = GpuPreprocessor(spec, cuda.context), Preprocessor(spec)
    for name, image in frames.items():  # one preprocessor across sizes: buffers are re-planned per size
        transform, result = run_gpu_preprocessing(cuda, gpu, image, spec)
        expected = np.zeros(spec.shape, spec.dtype)
        assert transform == cpu(image, expected), name
        assert_matches_cpu(result, expected, spec)


@pytest.mark.parametrize("resize", ["stretch", "letterbox-center"])
def test_class_map_matches_the_cpu_path(cuda, frames, assets, resize):
    import onnxruntime as ort

    from edge.gpu.segmentation import GpuClassMap

    spec = InputSpec("image", (1, 3, 384, 384), "nchw", "rgb", "float32", resize, 0.0,
                     (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    session = ort.InferenceSession(str(assets / "models/segmentation/espnetv2_s1.0_voc21_384x384.onnx"),
                                   providers=["CPUExecutionProvider"])
    gpu = GpuClassMap(21, 384, 384, spec, cuda.context)
    stream = cuda.driver.Stream()
    for image in frames.values():
        tensor = np.zeros(spec.shape, np.float32)
        transform = Preprocessor(spec)(image, tensor)
        logits = np.ascontiguousarray(session.run(None, {"image": tensor})[0][0])
        logits_on_gpu = cuda.driver.to_device(logits)  # kept alive until the stream is done with it
        mask = gpu(logits_on_gpu, transform, stream)
        stream.synchronize()
        rows, cols = nearest_tables(Window.of(logits.shape[1:], spec, transform), transform)
        expected = logits.argmax(0).astype(np.uint8)[np.ix_(rows, cols)]  # the decoder's pixels (tested on the CPU)
        np.testing.assert_array_equal(mask, expected)
        assert (mask == 15).any()  # the person in the frame


def copying_backend(driver, shape, slots=2):
    """TensorRtBackend over a stand-in engine (tests/fake_tensorrt.py) whose run copies input 'images' to output
    'copy' with a real CUDA copy on the slot's stream; opened on this thread, with a context of its own."""
    from fake_tensorrt import EngineSpec, Tensor, load_engine, make_tensorrt

    from edge.backends.tensorrt import TensorRtBackend
    from edge.gpu.cuda import CudaContext

    streams = {}

    def run(addresses, shapes, stream_handle):
        nbytes = int(np.prod(shapes["images"])) * 4
        driver.memcpy_dtod_async(addresses["copy"], addresses["images"], nbytes, streams[stream_handle])

    trt = make_tensorrt("10.3.0")
    engine = load_engine(trt, EngineSpec([Tensor("images", shape)], [Tensor("copy", shape)], run=run))
    backend = TensorRtBackend(Path("stand-in.engine"), engine, trt, CudaContext(), slots=slots)
    streams.update({slot.handle.stream.handle: slot.handle.stream for slot in backend.slots})
    return backend


def test_backend_cuda_memory_two_slots_in_flight(cuda, frames):
    spec = SPECS[0]
    backend = copying_backend(cuda.driver, spec.shape)
    first, second = backend.slots
    for slot in backend.slots:
        for array in (*slot.inputs.values(), *slot.outputs.values()):
            assert isinstance(array.base, cuda.driver.PagelockedHostAllocation)
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(spec.shape).astype(np.float32) for _ in range(2))
    first.inputs["images"][:] = a
    backend.submit(first)
    second.inputs["images"][:] = b  # written while the first slot may still be running
    backend.submit(second)
    np.testing.assert_array_equal(backend.wait(second)["copy"], b)
    np.testing.assert_array_equal(backend.wait(first)["copy"], a)
    assert backend.wait(first)["copy"] is first.outputs["copy"]  # the same page-locked array every time

    images = list(frames.values())  # frames preprocessed on the GPU into the slots' device inputs
    transforms = [backend.preprocess_frame(backend.slots[i % 2], 0, image, spec) for i, image in enumerate(images[:2])]
    for i, image in enumerate(images[:2]):
        backend.submit(backend.slots[i % 2])
        expected = np.zeros(spec.shape, np.float32)
        assert Preprocessor(spec)(image, expected) == transforms[i]
        assert_matches_cpu(backend.wait(backend.slots[i % 2])["copy"], expected, spec)
    backend.close()


def test_submit_and_wait_from_a_worker_thread(frames):
    """Issue 17, defect 1, on real CUDA: the backend is opened on this thread and used from another, as the
    pipeline's inference workers do; pycuda's context stack is per thread, so this fails with 'invalid device
    context' unless every call makes the context current itself. A push left on the worker would make pycuda
    abort the process when the thread exits."""
    driver = pytest.importorskip("pycuda.driver", reason="pycuda is not installed")
    from edge.gpu.cuda import CudaContext

    try:
        CudaContext().close()
    except Exception as e:  # no driver, no device: pycuda raises its own error types
        pytest.skip(f"no usable CUDA device ({type(e).__name__}: {e})")
    spec = SPECS[0]
    backend = copying_backend(driver, spec.shape)
    image = frames["1920x1080"]
    outcome = {}

    def worker():
        try:
            slot = backend.slots[1]
            slot.inputs["images"][:] = 1.5
            backend.submit(slot)
            outcome["copied"] = backend.wait(slot)["copy"].copy()
            outcome["transform"] = backend.preprocess_frame(slot, 0, image, spec)
            backend.submit(slot)
            outcome["preprocessed"] = backend.wait(slot)["copy"].copy()
            outcome["current"] = driver.Context.get_current()  # None: nothing left pushed on this thread
        except Exception as e:  # reported below
            outcome["error"] = e

    thread = threading.Thread(target=worker, name="infer-0")
    thread.start()
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["current"] is None
    np.testing.assert_array_equal(outcome["copied"], np.full(spec.shape, 1.5, np.float32))
    expected = np.zeros(spec.shape, np.float32)
    assert Preprocessor(spec)(image, expected) == outcome["transform"]
    assert_matches_cpu(outcome["preprocessed"], expected, spec)
    backend.close()


def test_cuda_info_agrees_with_pycuda(cuda):
    info = cuda_info.probe()
    device = cuda.driver.Device(0)
    assert info.gpus[0].compute_capability == "{}.{}".format(*device.compute_capability())
    assert info.gpus[0].name == device.name()
    assert info.driver_version == cuda_info.format_version(cuda.driver.get_driver_version())

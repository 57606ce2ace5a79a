"""The TensorRT backend against the strict stand-ins of TensorRT (tests/fake_tensorrt.py) and pycuda
(tests/fake_pycuda.py): per-thread CUDA context stacks, each release's real members and argument types, plans
that deserialise only with the plugins registered, outputs that resolve only once the input shapes are set.

Nothing here runs TensorRT or a GPU: the stand-in engine's ``execute_async_v3`` copies its input to its output
in host memory standing in for the device, which is enough to see frames travel through the slots. The
``gpu``-marked test in tests/test_gpu.py does the worker-thread run on real CUDA.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import sys
import threading
from pathlib import Path

import fake_pycuda
import numpy as np
import pytest
from fake_tensorrt import EngineSpec, Layer, Network, Tensor, make_tensorrt

from edge.backends import open_backend
from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.backends.tensorrt import TensorRtBackend, open_engine
from edge.bundle import InputSpec, load_bundle, sha256_file
from edge.engines import EngineOptions, EngineTag, ProfileShape, Target, engine_folder, read_tag, write_engine
from edge.errors import BadInputError, EdgeError, UsageError
from edge.gpu import cuda as edge_cuda
from edge.preprocess import Preprocessor

SHAPE = (1, 3, 64, 64)
SPEC = InputSpec("images", SHAPE, "nchw", "bgr", "float32", "letterbox", 114.0)
ORIN = Target("10.3.0", "8.7", "Orin", "NVIDIA Jetson AGX Orin Developer Kit")


@pytest.fixture
def cuda(monkeypatch):
    return fake_pycuda.install(monkeypatch)


@pytest.fixture
def trt(monkeypatch):
    module = make_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def copying_engine(cuda, shape=SHAPE, **tensor):
    """An engine whose run copies input 'images' to output 'copy' (same bytes) in the stand-in's memory."""
    def run(addresses, shapes, stream_handle):
        nbytes = int(np.prod(shapes["images"])) * 4
        cuda.memory(addresses["copy"], nbytes)[:] = cuda.memory(addresses["images"], nbytes)
    return EngineSpec([Tensor("images", shape, **tensor)], [Tensor("copy", shape)], run=run)


def engine_file(trt, spec, tmp_path) -> Path:
    path = tmp_path / "stand-in.engine"
    path.write_bytes(trt.plan(spec))
    return path


def test_submit_and_wait_from_a_worker_thread(trt, cuda, tmp_path):
    """Defect 1: the context was made current only on the thread that opened the backend; the inference
    workers' first copy failed with 'invalid device context', and every TensorRT run exited 4."""
    backend = open_engine(engine_file(trt, copying_engine(cuda), tmp_path), slots=2)
    frames = [np.full(SHAPE, i, np.float32) for i in range(4)]
    results, errors, depths = [], [], []

    def worker():
        try:
            for i, frame in enumerate(frames):
                slot = backend.slots[i % 2]
                slot.inputs["images"][:] = frame
                backend.submit(slot)
                results.append(backend.wait(slot)["copy"].copy())
        except Exception as e:  # reported below, with the thread's own error
            errors.append(e)
        depths.append(cuda.depth())

    thread = threading.Thread(target=worker, name="infer-0")
    thread.start()
    thread.join()
    del thread
    gc.collect()
    assert errors == [] and depths == [0] and cuda.aborts == []  # no push left on the worker at its exit
    for result, frame in zip(results, frames):
        np.testing.assert_array_equal(result, frame)
    backend.close()
    assert cuda.depth() == 0 and all(a.freed for a in cuda.allocations.values() if a.data.size == 64 * 64 * 12)


def test_a_failed_submit_leaves_no_context_pushed(trt, cuda, tmp_path):
    backend = open_engine(engine_file(trt, copying_engine(cuda), tmp_path))
    slot = backend.slots[0]
    slot.handle.execution.execute_async_v3 = lambda stream_handle: False  # TensorRT refuses to enqueue
    with pytest.raises(EdgeError, match="failed to enqueue"):
        backend.submit(slot)
    assert cuda.depth() == 0


def test_execute_gets_the_stream_handle_not_the_stream(trt, cuda, tmp_path):
    backend = open_engine(engine_file(trt, copying_engine(cuda), tmp_path))
    stream = backend.slots[0].handle.stream
    with pytest.raises(TypeError):  # what pybind11 says to a pycuda Stream object
        backend.slots[0].handle.execution.execute_async_v3(stream)
    backend.run(backend.slots[0])  # the backend passes stream.handle, an int


def test_outputs_that_follow_a_dynamic_input_height_and_width(trt, cuda, tmp_path):
    """Defect 4: outputs were sized from engine.get_tensor_shape, -1 where an output follows the input's H/W."""
    profile = ((1, 3, 256, 256), (1, 3, 384, 384), (1, 3, 512, 512))
    spec = EngineSpec([Tensor("image", (1, 3, -1, -1), profile=profile)],
                      [Tensor("logits", (1, 21, -1, -1), follows=lambda s: (1, 21, s["image"][2] // 8,
                                                                             s["image"][3] // 8))])
    backend = open_engine(engine_file(trt, spec, tmp_path), input_shapes={"image": (1, 3, 384, 512)})
    assert backend.slots[0].inputs["image"].shape == (1, 3, 384, 512)
    assert backend.slots[0].outputs["logits"].shape == (1, 21, 48, 64)
    backend.run(backend.slots[0])  # every dynamic input has its shape on the context: execute accepts it
    backend.close()


def test_engines_with_standard_plugins_deserialise(trt, cuda, tmp_path):
    """Defect 3: without init_libnvinfer_plugins, deserialize_cuda_engine returns None for an engine with
    EfficientNMS_TRT, and --backend auto fell back to ONNX Runtime on every start."""
    spec = dataclasses.replace(copying_engine(cuda), plugins=("EfficientNMS_TRT",))
    backend = open_engine(engine_file(trt, spec, tmp_path))
    assert ("init_libnvinfer_plugins", "") in trt.calls
    assert trt.calls.index(("init_libnvinfer_plugins", "")) < trt.calls.index(("deserialize_cuda_engine",))
    backend.close()


def test_a_plan_from_elsewhere_is_one_bad_input_line(trt, cuda, tmp_path):
    path = tmp_path / "other.engine"
    path.write_bytes(b"a plan some other TensorRT wrote")
    with pytest.raises(BadInputError, match="cannot deserialise this engine"):
        open_engine(path)
    assert cuda.depth() == 0


@pytest.fixture
def bundle(yolox_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr("edge.backends.tensorrt.runtime_target", lambda: ORIN)
    monkeypatch.setattr("edge.backends.builder.current_target", lambda: ORIN)
    return load_bundle(shutil.copytree(yolox_bundle.root, tmp_path / "bundle"))


def tagged_engine(bundle, trt, spec) -> Path:
    shape = bundle.input.shape
    tag = EngineTag(bundle.name, sha256_file(bundle.file("model")), ORIN, EngineOptions("fp16"),
                    (ProfileShape(bundle.input.name, shape, shape, shape),))
    return write_engine(engine_folder(bundle), tag, trt.plan(spec))


def test_an_output_numpy_cannot_hold_falls_back_under_auto(bundle, trt, cuda, caplog):
    """Defect 5: trt.nptype's TypeError for a BF16 output escaped open_backend, so --backend auto aborted."""
    spec = EngineSpec([Tensor("images", bundle.input.shape)], [Tensor("output", (1, 3549, 85), "BF16")])
    tagged_engine(bundle, trt, spec)
    backend = open_backend(bundle, "auto")
    assert isinstance(backend, OnnxRuntimeBackend)
    backend.close()
    assert "TensorRT failed (tensor 'output' is BF16, which has no NumPy type" in caplog.text
    with pytest.raises(BadInputError, match="is BF16"):
        open_backend(bundle, "tensorrt")
    assert cuda.depth() == 0


def test_a_quantized_bundle_builds_its_first_engine_as_int8(bundle, cuda, monkeypatch):
    """Defect 2: automatic builds used fp16 whatever the bundle, so a Q/DQ bundle without an engine failed
    with a usage error naming --precision, a flag replay does not have."""
    document = (bundle.root / "bundle.json").read_text().replace('"precision": "fp32"', '"precision": "int8"')
    (bundle.root / "bundle.json").write_text(document)
    bundle = load_bundle(bundle.root)
    network = Network([(bundle.input.name, bundle.input.shape)], [Layer("QUANTIZE"), Layer("DEQUANTIZE")],
                      [Tensor("output", (1, 3549, 85))])
    trt = make_tensorrt("10.3.0", network)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    backend = open_backend(bundle, "tensorrt")
    assert isinstance(backend, TensorRtBackend) and backend.precision == "int8"
    [engine] = engine_folder(bundle).glob("*.engine")
    assert read_tag(engine).options.precision == "int8"
    assert [c[1] for c in trt.calls if c[0] == "set_flag"] == ["INT8", "FP16"]
    backend.close()


@pytest.fixture
def compiler(tmp_path, monkeypatch):
    """An executable nvcc at a path of the test's choosing (the stand-in SourceModule only checks it exists);
    nothing on PATH, no CUDA_HOME, no /usr/local/cuda."""
    nvcc = tmp_path / "cuda/bin/nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.6'\n")
    nvcc.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setattr(edge_cuda, "JETPACK_NVCC", tmp_path / "no/cuda/bin/nvcc", raising=False)
    return nvcc


def test_kernels_compile_with_nvcc_off_path(cuda, compiler, monkeypatch):
    """Defect 6: pycuda runs 'nvcc --version' for its cache key even on a cache hit, and JetPack puts nvcc on
    no one's PATH (a systemd service least of all): the compiler is passed explicitly."""
    monkeypatch.setenv("CUDA_HOME", str(compiler.parent.parent))
    edge_cuda.CudaContext().function("letterbox_f32")
    assert cuda.modules[-1]["nvcc"] == str(compiler)
    monkeypatch.delenv("CUDA_HOME")
    monkeypatch.setattr(edge_cuda, "JETPACK_NVCC", compiler)  # JetPack's /usr/local/cuda/bin/nvcc
    assert edge_cuda.find_nvcc() == compiler
    monkeypatch.setattr(edge_cuda, "JETPACK_NVCC", Path("/nonexistent/nvcc"))
    monkeypatch.setenv("PATH", str(compiler.parent) + os.pathsep + os.environ["PATH"])
    assert edge_cuda.find_nvcc() == compiler


def test_without_nvcc_gpu_preprocessing_declines_and_the_cpu_path_runs(trt, cuda, compiler, tmp_path, caplog):
    compiler.unlink()
    with pytest.raises(UsageError, match="need the CUDA compiler nvcc"):
        edge_cuda.find_nvcc()
    backend = open_engine(engine_file(trt, copying_engine(cuda), tmp_path))
    assert backend.preprocess_frame(backend.slots[0], 0, np.zeros((48, 80, 3), np.uint8), SPEC) is None
    assert "preprocessing on the CPU: the GPU kernels are unavailable" in caplog.text
    assert cuda.depth() == 0


def test_preprocess_frame_writes_the_device_input_and_submit_skips_its_copy(trt, cuda, compiler, tmp_path,
                                                                          monkeypatch):
    """Issue 12 item 7: GPU preprocessing reaches the TensorRT path through Backend.preprocess_frame; the
    runner calls it and falls back to the CPU preprocessor where it returns None."""
    monkeypatch.setenv("CUDA_HOME", str(compiler.parent.parent))
    batched = (2, *SHAPE[1:])
    backend = open_engine(engine_file(trt, copying_engine(cuda, batched), tmp_path))
    slot = backend.slots[0]
    frame = np.random.default_rng(0).integers(0, 255, (48, 80, 3), np.uint8)
    transform = backend.preprocess_frame(slot, 1, frame, SPEC)
    assert transform == Preprocessor(SPEC)(frame, np.empty(SHAPE, np.float32))
    name, stream, arguments = cuda.launches[-1]
    item = int(np.prod(SHAPE)) * 4
    assert name == "letterbox_f32" and stream is slot.handle.stream
    assert arguments[12] == int(slot.handle.device["images"]) + item  # the output pointer: batch item 1
    Preprocessor(SPEC)(frame, slot.inputs["images"][0])  # item 0 on the CPU, as the runner would
    uploads = len(cuda.uploads)
    backend.submit(slot)
    backend.wait(slot)
    assert cuda.uploads[uploads:] == [fake_pycuda.digest(slot.inputs["images"][0])]  # item 0 only
    backend.submit(slot)  # nothing preprocessed on the GPU this time: the whole host input goes up
    assert cuda.uploads[-1] == fake_pycuda.digest(slot.inputs["images"])
    backend.close()


def test_class_map_runs_the_decoders_tables_on_the_device_logits(trt, cuda, compiler, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_HOME", str(compiler.parent.parent))
    spec = EngineSpec([Tensor("images", SHAPE)], [Tensor("logits", (1, 21, 16, 16)), Tensor("count", (1,), "INT32")])
    backend = open_engine(engine_file(trt, spec, tmp_path))
    slot = backend.slots[0]
    backend.run(slot)
    transform = Preprocessor(SPEC)(np.zeros((48, 80, 3), np.uint8), slot.inputs["images"])
    mask = backend.class_map(slot, 0, "logits", transform, SPEC)
    assert mask.shape == (48, 80) and mask.dtype == np.uint8
    assert [launch[0] for launch in cuda.launches] == ["argmax_classes", "resize_nearest_u8"]
    assert cuda.launches[0][2][0] == int(slot.handle.device["logits"])
    assert backend.class_map(slot, 0, "count", transform, SPEC) is None  # not class logits
    assert cuda.depth() == 0
    backend.close()


def test_other_backends_offer_no_gpu_path(yolox_bundle):
    backend = open_backend(yolox_bundle, "onnxruntime")
    frame = np.zeros((48, 80, 3), np.uint8)
    assert backend.preprocess_frame(backend.slots[0], 0, frame, yolox_bundle.input) is None
    assert backend.class_map(backend.slots[0], 0, "output", None, yolox_bundle.input) is None
    backend.close()


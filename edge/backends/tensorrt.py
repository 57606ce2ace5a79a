"""TensorRT on the GPU, with pycuda for device memory, page-locked host buffers, streams and events.

Everything is allocated once per slot: page-locked host arrays (the slot's ``inputs``/``outputs``, so the
CPU preprocessor writes straight into memory the GPU can copy from asynchronously), device buffers, an
execution context, a CUDA stream and an event. ``submit`` enqueues host→device copies,
``execute_async_v3`` and device→host copies on the slot's stream and returns at once; ``wait``
synchronises the slot's event. With two slots, frame n+1 is preprocessed into slot 1 while slot 0 runs.
Each slot has its own execution context because one context must not run on two streams at once.

Only the name-based I/O API (TensorRT 8.5+) is used, the same on 8.5/8.6, 10.x and 11.x. TensorRT and
pycuda are imported inside functions, never when this module is imported.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge import cuda_info, jetson
from edge.backends.base import Backend, Slot
from edge.backends.trt_api import TrtApi
from edge.backends.trt_buffers import describe_tensors, plan_buffers
from edge.bundle import InputSpec
from edge.engines import EngineOptions, Target
from edge.errors import BadInputError, EdgeError, UsageError
from edge.gpu.cuda import CudaContext
from edge.preprocess import Transform


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or one clear error line."""
    try:
        import tensorrt
    except ImportError as e:
        raise UsageError(f"TensorRT is not installed ({e}); on a Jetson it comes with JetPack "
                         f"(python3-libnvinfer)") from None
    return tensorrt


def current_target() -> Target:
    """This machine as an engine target. Raises :class:`EdgeError` saying what is missing."""
    if importlib.util.find_spec("tensorrt") is None:
        raise EdgeError("TensorRT is not installed")
    trt = import_tensorrt()
    TrtApi.parse(trt.__version__)  # refuses releases older than edge supports
    info = cuda_info.probe()
    if not info.gpus:
        raise EdgeError(f"no CUDA GPU is usable ({info.problem})")
    gpu = info.gpus[0]
    return Target(trt.__version__, gpu.compute_capability, gpu.name, jetson.model_name())


def runtime_target() -> Target:
    """:func:`current_target`, once pycuda (which the backend needs, unlike the builder) is known to be there."""
    target = current_target()
    if importlib.util.find_spec("pycuda") is None:
        raise EdgeError("pycuda is not installed (pip install 'edge[gpu]')")
    return target


@dataclass
class _SlotState:
    execution: Any  # IExecutionContext
    stream: Any
    done: Any  # event recorded after the slot's last copy
    device: dict[str, Any]  # device buffer per tensor name
    preprocessor: Any = None  # GpuPreprocessor, once GPU preprocessing is enabled


class TensorRtBackend(Backend):
    """Runs a deserialised engine; see the module docstring. :func:`open_engine` loads one from a file."""

    name = "tensorrt"

    def __init__(self, model_path: Path, engine: Any, trt: Any, context: CudaContext, *,
                 input_shapes: dict[str, tuple[int, ...]] | None = None, slots: int = 1):
        super().__init__(model_path)
        self.context = context
        self.engine = engine
        tensors = describe_tensors(engine, trt)
        self._buffers = plan_buffers(tensors, input_shapes or {})
        self._dynamic = {t.name for t in tensors if t.profile is not None}
        self.inputs = tuple(t.info() for t in tensors if t.is_input)
        self.outputs = tuple(t.info() for t in tensors if not t.is_input)
        self.slots = tuple(self._make_slot(index) for index in range(slots))

    def _make_slot(self, index: int) -> Slot:
        cuda = self.context.cuda
        execution = self.engine.create_execution_context()
        if execution is None:
            raise EdgeError(f"{self.model_path}: TensorRT could not create an execution context (GPU memory?)")
        host, device = {}, {}
        for buffer in self._buffers:
            host[buffer.name] = cuda.pagelocked_empty(buffer.shape, buffer.dtype)
            device[buffer.name] = cuda.mem_alloc(max(buffer.nbytes, 1))
            if buffer.name in self._dynamic:
                execution.set_input_shape(buffer.name, buffer.shape)
            execution.set_tensor_address(buffer.name, int(device[buffer.name]))
        for buffer in self._buffers:
            resolved = tuple(int(d) for d in execution.get_tensor_shape(buffer.name))
            if resolved != buffer.shape:
                raise BadInputError(f"{self.model_path}: tensor '{buffer.name}' resolves to {list(resolved)}, "
                                    f"not the planned {list(buffer.shape)}")
        state = _SlotState(execution, cuda.Stream(), cuda.Event(), device)
        inputs = {b.name: host[b.name] for b in self._buffers if b.is_input}
        outputs = {b.name: host[b.name] for b in self._buffers if not b.is_input}
        return Slot(index, inputs, outputs, state)

    def submit(self, slot: Slot) -> None:
        state: _SlotState = slot.handle
        for name, array in slot.inputs.items():
            self.context.cuda.memcpy_htod_async(state.device[name], array, state.stream)
        self._enqueue(slot)

    def enable_gpu_preprocessing(self, spec: InputSpec) -> None:
        """Gives every slot a :class:`~edge.gpu.preprocess.GpuPreprocessor` writing into its device input, for
        :meth:`submit_frame`. The CPU path (:meth:`submit`) stays available and is the reference."""
        from edge.gpu.preprocess import GpuPreprocessor

        planned = {b.name: b for b in self._buffers if b.is_input}
        buffer = planned.get(spec.name)
        if buffer is None or buffer.shape != tuple(spec.shape) or buffer.dtype != np.dtype(spec.dtype):
            raise BadInputError(f"{self.model_path}: input '{spec.name}' {spec.dtype} {list(spec.shape)} does not "
                                f"match the engine's inputs ({', '.join(planned)})")
        for slot in self.slots:
            slot.handle.preprocessor = GpuPreprocessor(spec, self.context)

    def submit_frame(self, slot: Slot, image: np.ndarray) -> Transform:
        """Preprocesses a BGR frame on the GPU straight into the slot's device input, then runs the slot as
        :meth:`submit` does. Returns the transform back to frame pixels."""
        state: _SlotState = slot.handle
        if state.preprocessor is None:
            raise UsageError("GPU preprocessing is not enabled on this backend (enable_gpu_preprocessing)")
        transform = state.preprocessor(image, state.device[state.preprocessor.spec.name], state.stream)
        self._enqueue(slot)
        return transform

    def _enqueue(self, slot: Slot) -> None:
        state: _SlotState = slot.handle
        if not state.execution.execute_async_v3(state.stream.handle):
            raise EdgeError(f"{self.model_path}: TensorRT failed to enqueue inference (see its log above)")
        for name, array in slot.outputs.items():
            self.context.cuda.memcpy_dtoh_async(array, state.device[name], state.stream)
        state.done.record(state.stream)

    def wait(self, slot: Slot) -> dict[str, np.ndarray]:
        slot.handle.done.synchronize()
        return slot.outputs

    def close(self) -> None:
        for slot in self.slots:
            slot.handle.done.synchronize()
            for allocation in slot.handle.device.values():
                allocation.free()
        super().close()
        self.engine = None
        self.context.close()


def open_engine(path: Path, *, input_shapes: dict[str, tuple[int, ...]] | None = None, slots: int = 1,
                options: EngineOptions | None = None) -> TensorRtBackend:
    """Deserialises an engine file (``Runtime.deserialize_cuda_engine``) into a :class:`TensorRtBackend`;
    ``options`` are those it was built with (its tag's): the DLA core to run on and the precision to report."""
    trt = import_tensorrt()
    options = options or EngineOptions()
    dla_core = options.dla_core
    context = CudaContext()  # current before deserialising: the engine's memory lives in this context
    try:
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if dla_core is not None:
            runtime.DLA_core = dla_core
        engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if engine is None:
            raise BadInputError(f"{path}: TensorRT {trt.__version__} cannot deserialise this engine (built by "
                                f"another TensorRT, or corrupt)")
        backend = TensorRtBackend(Path(path), engine, trt, context, input_shapes=input_shapes, slots=slots)
        backend.precision = options.precision
        return backend
    except BaseException:
        context.close()
        raise

"""TensorRT on the GPU, with pycuda for device memory, page-locked host buffers, streams and events.

Everything is allocated once per slot: page-locked host arrays (the slot's ``inputs``/``outputs``, so the
CPU preprocessor writes straight into memory the GPU can copy from asynchronously), device buffers, an
execution context, a CUDA stream and an event. ``submit`` enqueues host→device copies,
``execute_async_v3`` and device→host copies on the slot's stream and returns at once; ``wait``
synchronises the slot's event. With two slots, frame n+1 is preprocessed into slot 1 while slot 0 runs.
Each slot has its own execution context because one context must not run on two streams at once.

Every method runs inside :meth:`CudaContext.active`, so any thread may call it (the pipeline's inference
workers are not the thread that opened the backend) and none is left with the context pushed.

Where the GPU can do the CPU's work, :meth:`TensorRtBackend.preprocess_frame` (frame → input on the GPU)
and :meth:`TensorRtBackend.class_map` (segmentation logits → frame-sized class map on the GPU) offer it;
both return ``None`` where they cannot, and the caller keeps the CPU path.

Only the name-based I/O API (TensorRT 8.5+) is used, the same on 8.5/8.6, 10.x and 11.x. TensorRT and
pycuda are imported inside functions, never when this module is imported.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import cuda_info, jetson
from edge.backends.base import Backend, Slot
from edge.backends.trt_api import TrtApi
from edge.backends.trt_buffers import describe_tensors, plan_buffers, plan_inputs
from edge.bundle import InputSpec
from edge.engines import EngineOptions, Target
from edge.errors import BadInputError, EdgeError, UsageError
from edge.gpu.cuda import CudaContext
from edge.preprocess import Transform

LOG = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or one clear error line."""
    try:
        import tensorrt
    except ImportError as e:
        raise UsageError(f"TensorRT is not installed ({e}); on a Jetson it comes with JetPack "
                         f"(python3-libnvinfer)") from None
    return tensorrt


def load_tensorrt() -> tuple[Any, Any]:
    """``tensorrt`` and this process's logger, with TensorRT's standard plugins registered.

    Engines and ONNX models that use a standard plugin (EfficientNMS_TRT, BatchedNMS_TRT…) load only once
    ``init_libnvinfer_plugins`` has run; without it the parser fails and ``deserialize_cuda_engine`` returns
    ``None`` (NVIDIA/TensorRT#2675), so every build and load goes through here first.
    """
    trt = import_tensorrt()
    return trt, _prepared_logger(trt)


@functools.cache
def _prepared_logger(trt: Any) -> Any:
    logger = trt.Logger(trt.Logger.WARNING)
    if not trt.init_libnvinfer_plugins(logger, ""):
        LOG.warning("TensorRT's plugin library did not load: models with standard plugins (EfficientNMS_TRT…) "
                    "will not parse or deserialise")
    return logger


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
    on_device: dict[str, set[int]] = field(default_factory=dict)  # input items preprocessed on the GPU since the
    # last submit, per input name
    preprocessors: dict[int, Any] = field(default_factory=dict)  # GpuPreprocessor per batch item
    class_maps: dict[str, Any] = field(default_factory=dict)  # GpuClassMap per output


class TensorRtBackend(Backend):
    """Runs a deserialised engine; see the module docstring. :func:`open_engine` loads one from a file."""

    name = "tensorrt"
    on_device = True

    def __init__(self, model_path: Path, engine: Any, trt: Any, context: CudaContext, *,
                 input_shapes: dict[str, tuple[int, ...]] | None = None, slots: int = 1):
        super().__init__(model_path)
        self.context = context
        self.engine = engine
        self._gpu_preprocessing: bool | None = None  # None: not tried yet
        tensors = describe_tensors(engine, trt)
        inputs = plan_inputs(tensors, input_shapes or {})
        self._dynamic = {t.name for t in tensors if t.profile is not None}
        with context.active():
            first = self._execution_context(inputs)
            # An output's shape can follow the inputs' (a dynamic batch, or H/W): TensorRT resolves it only
            # once the input shapes are set on a context, so the plan reads it there, not from the engine.
            resolved = {t.name: tuple(int(d) for d in first.get_tensor_shape(t.name))
                        for t in tensors if not t.is_input}
            self._buffers = plan_buffers(tensors, inputs, resolved)
            self.inputs = tuple(t.info() for t in tensors if t.is_input)
            self.outputs = tuple(t.info() for t in tensors if not t.is_input)
            self.slots = tuple(self._make_slot(index, first if index == 0 else self._execution_context(inputs))
                               for index in range(slots))

    def _execution_context(self, inputs: dict[str, tuple[int, ...]]) -> Any:
        execution = self.engine.create_execution_context()
        if execution is None:
            raise EdgeError(f"{self.model_path}: TensorRT could not create an execution context (GPU memory?)")
        for name in self._dynamic:
            if not execution.set_input_shape(name, inputs[name]):
                raise BadInputError(f"{self.model_path}: input '{name}' {list(inputs[name])} is outside the "
                                    f"engine's profile")
        return execution

    def _make_slot(self, index: int, execution: Any) -> Slot:
        cuda = self.context.cuda
        host, device = {}, {}
        for buffer in self._buffers:
            host[buffer.name] = cuda.pagelocked_empty(buffer.shape, buffer.dtype)
            device[buffer.name] = cuda.mem_alloc(max(buffer.nbytes, 1))
            execution.set_tensor_address(buffer.name, int(device[buffer.name]))
        state = _SlotState(execution, cuda.Stream(), cuda.Event(), device)
        inputs = {b.name: host[b.name] for b in self._buffers if b.is_input}
        outputs = {b.name: host[b.name] for b in self._buffers if not b.is_input}
        return Slot(index, inputs, outputs, state)

    def submit(self, slot: Slot) -> None:
        state: _SlotState = slot.handle
        with self.context.active() as cuda:
            for name, array in slot.inputs.items():
                written = state.on_device.pop(name, None)
                if not written:
                    cuda.memcpy_htod_async(state.device[name], array, state.stream)
                    continue
                # Items preprocessed on the GPU are already in the device buffer: copy only the others.
                for index in sorted(set(range(len(array))) - written):
                    cuda.memcpy_htod_async(int(state.device[name]) + index * array[0].nbytes, array[index],
                                           state.stream)
            if not state.execution.execute_async_v3(state.stream.handle):
                raise EdgeError(f"{self.model_path}: TensorRT failed to enqueue inference (see its log above)")
            for name, array in slot.outputs.items():
                cuda.memcpy_dtoh_async(array, state.device[name], state.stream)
            state.done.record(state.stream)

    def wait(self, slot: Slot) -> dict[str, np.ndarray]:
        with self.context.active():
            slot.handle.done.synchronize()
        return slot.outputs

    def preprocess_frame(self, slot: Slot, index: int, image: np.ndarray, spec: InputSpec) -> Transform | None:
        """Preprocesses a BGR frame on the GPU straight into batch item ``index`` of the slot's device input
        (:class:`~edge.gpu.preprocess.GpuPreprocessor`: OpenCV's own arithmetic, so the same values as the
        CPU :class:`~edge.preprocess.Preprocessor`), enqueued on the slot's stream. The next :meth:`submit`
        then does not copy that item from the host, whose array is left as it was. Returns the transform
        back to frame pixels, or ``None`` where the GPU path is unavailable (no kernels: no nvcc; an input
        that does not match ``spec``): the caller then preprocesses on the CPU as usual."""
        if self._gpu_preprocessing is None:
            self._gpu_preprocessing = self._can_preprocess(slot, spec)
        if not self._gpu_preprocessing:
            return None
        state: _SlotState = slot.handle
        target = slot.inputs[spec.name]
        with self.context.active():
            preprocessor = state.preprocessors.get(index)
            if preprocessor is None:  # one per item: each keeps its frame's staging copy until the slot runs
                from edge.gpu.preprocess import GpuPreprocessor

                preprocessor = state.preprocessors[index] = GpuPreprocessor(spec, self.context)
            pointer = int(state.device[spec.name]) + index * target[0].nbytes
            transform = preprocessor(image, pointer, state.stream)
        state.on_device.setdefault(spec.name, set()).add(index)
        return transform

    def _can_preprocess(self, slot: Slot, spec: InputSpec) -> bool:
        target = slot.inputs.get(spec.name)
        if target is None or target.shape[1:] != tuple(spec.shape[1:]) or target.dtype != np.dtype(spec.dtype):
            LOG.info("%s: preprocessing on the CPU: input '%s' %s %s does not match the engine's", self.model_path,
                     spec.name, spec.dtype, list(spec.shape))
            return False
        try:
            for kernel in ("letterbox_f32", "letterbox_u8"):
                self.context.function(kernel)
        except (EdgeError, OSError, self.context.cuda.Error) as e:  # no nvcc; a compile error
            LOG.warning("%s: preprocessing on the CPU: the GPU kernels are unavailable (%s)", self.model_path, e)
            return False
        return True

    def class_map(self, slot: Slot, index: int, output: str, transform: Transform,
                  spec: InputSpec) -> np.ndarray | None:
        """The ``softmax`` segmentation decoder's ``nearest`` class map of batch item ``index``, computed on the
        GPU from ``output``'s logits ([B, C, H, W] float32, still on the device after :meth:`wait`), as
        :class:`~edge.gpu.segmentation.GpuClassMap` does: the same pixels, and only a frame-sized uint8 map
        crosses to the host instead of an argmax over C planes on the CPU. ``spec`` is the model input the
        logits came from. ``None`` where it does not apply (another layout or dtype, over 256 classes, no
        kernels); the decoder then classifies on the CPU."""
        from edge.gpu.segmentation import MAX_CLASSES, GpuClassMap

        state: _SlotState = slot.handle
        logits = slot.outputs.get(output)
        if logits is None or logits.ndim != 4 or logits.dtype != np.float32 or logits.shape[1] > MAX_CLASSES:
            return None
        with self.context.active():
            mapper = state.class_maps.get(output)
            if mapper is None:
                try:
                    mapper = state.class_maps[output] = GpuClassMap(*logits.shape[1:], spec, self.context)
                except (EdgeError, OSError, self.context.cuda.Error) as e:
                    LOG.warning("%s: class map on the CPU: the GPU kernels are unavailable (%s)", self.model_path, e)
                    return None
            mask = mapper(int(state.device[output]) + index * logits[0].nbytes, transform, state.stream)
            state.stream.synchronize()
        return mask.copy()  # the page-locked mask is overwritten by the next call

    def close(self) -> None:
        with self.context.active():
            for slot in self.slots:
                slot.handle.done.synchronize()
                slot.handle.preprocessors.clear()
                slot.handle.class_maps.clear()
                for allocation in slot.handle.device.values():
                    allocation.free()
            super().close()
            self.engine = None
        self.context.close()


def open_engine(path: Path, *, input_shapes: dict[str, tuple[int, ...]] | None = None, slots: int = 1,
                options: EngineOptions | None = None) -> TensorRtBackend:
    """Deserialises an engine file (``Runtime.deserialize_cuda_engine``) into a :class:`TensorRtBackend`;
    ``options`` are those it was built with (its tag's): the DLA core to run on and the precision to report."""
    trt, logger = load_tensorrt()
    options = options or EngineOptions()
    context = CudaContext()
    with context.active():  # the engine's memory lives in the primary context
        runtime = trt.Runtime(logger)
        if options.dla_core is not None:
            runtime.DLA_core = options.dla_core
        engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        context.close()
        raise BadInputError(f"{path}: TensorRT {trt.__version__} cannot deserialise this engine (built by "
                            f"another TensorRT, corrupt, or it needs a plugin this machine lacks: see its log above)")
    try:
        backend = TensorRtBackend(Path(path), engine, trt, context, input_shapes=input_shapes, slots=slots)
    except BaseException:
        context.close()
        raise
    backend.precision = options.precision
    return backend

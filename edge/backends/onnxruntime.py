"""ONNX Runtime on the CPU: the fallback on a device without an engine, and the backend of CI.

One ``InferenceSession`` per model, explicit thread settings, and one ``IOBinding`` per slot whose
inputs and static-shape outputs are bound to preallocated NumPy arrays: ONNX Runtime reads and writes
those arrays in place, so nothing is allocated per frame. Outputs whose shape is only known after the
run (post-processed models that return N detections) are allocated by ONNX Runtime and copied out.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.backends.base import Backend, Slot, TensorInfo, resolve_shape
from edge.errors import BadInputError

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def usable_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike ``os.cpu_count``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _tensor_infos(args: list) -> tuple[TensorInfo, ...]:
    return tuple(
        TensorInfo(a.name, tuple(d if isinstance(d, int) else None for d in a.shape),
                   np.dtype(_ORT_TYPES.get(a.type, np.float32)))
        for a in args
    )


def open_session(model_path: Path, threads: int | None = None, spin: bool = False,
                 fuse_int8: bool = True) -> ort.InferenceSession:
    """An ORT CPU session with explicit threading. ``spin=False`` stops idle intra-op threads from busy-waiting,
    which would steal the cores that decoding and drawing run on.

    ``fuse_int8=False`` keeps Q/DQ pairs as the float operations they describe (constant folding only), which is
    the arithmetic TensorRT runs them with. Fused, ONNX Runtime runs its own int8 kernels, whose results can differ:
    1.32's ``MatMulIntegerToFloat`` gets whole columns wrong with per-column weight scales on a 4-D input
    (``tests/test_quantize.py``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fuse_int8 else \
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3  # old exports warn about initializers listed as inputs; that is not news
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises several private exception types for unreadable models
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInputError(f"{model_path}: ONNX Runtime cannot load the model ({first_line})") from None


class OnnxRuntimeBackend(Backend):
    """CPU inference with ONNX Runtime, buffers bound once per slot."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, *, input_shapes: dict[str, tuple[int, ...]] | None = None,
                 batch: int = 1, slots: int = 1, threads: int | None = None, spin: bool = False,
                 fuse_int8: bool = True):
        super().__init__(model_path)
        self.session = open_session(self.model_path, threads, spin, fuse_int8)
        self.threads = self.session.get_session_options().intra_op_num_threads
        self.inputs = _tensor_infos(self.session.get_inputs())
        self.outputs = _tensor_infos(self.session.get_outputs())
        shapes = {i.name: resolve_shape(i, (input_shapes or {}).get(i.name), batch) for i in self.inputs}
        self._input_values: dict[tuple[int, int | None], dict[str, ort.OrtValue]] = {}
        self.slots = tuple(self._make_slot(n, shapes) for n in range(slots))

    def add_slot(self, input_shapes: dict[str, tuple[int, ...]]) -> Slot:
        shapes = {i.name: resolve_shape(i, input_shapes.get(i.name), 1) for i in self.inputs}
        slot = self._make_slot(len(self.slots), shapes)
        self.slots = (*self.slots, slot)
        return slot

    def run_first(self, slot: Slot, count: int) -> dict[str, np.ndarray]:
        """Binds views of the first ``count`` items (no copy) for this run, then the full buffers again."""
        if count == next(iter(slot.inputs.values())).shape[0]:
            return self.run(slot)
        self._bind_inputs(slot, count)
        try:
            return self.run(slot)  # a dynamic batch gives run-time output shapes: ORT allocates them afresh
        finally:
            self._bind_inputs(slot, None)

    def _bind_inputs(self, slot: Slot, count: int | None) -> None:
        """Binds the first ``count`` items of the slot's inputs (None: all). The OrtValues over those views
        are made once per slot and count, not on every partial batch (a frame's crops rarely fill one)."""
        values = self._input_values.get((slot.index, count))
        if values is None:
            values = {name: ort.OrtValue.ortvalue_from_numpy(array if count is None else array[:count])
                      for name, array in slot.inputs.items()}
            self._input_values[(slot.index, count)] = values
        for name, value in values.items():
            slot.handle.bind_ortvalue_input(name, value)

    def _make_slot(self, index: int, shapes: dict[str, tuple[int, ...]]) -> Slot:
        binding = self.session.io_binding()
        inputs = {info.name: np.zeros(shapes[info.name], info.dtype) for info in self.inputs}
        outputs = {}
        for info in self.outputs:
            if all(isinstance(d, int) for d in info.shape):
                array = np.zeros(info.shape, info.dtype)
                binding.bind_ortvalue_output(info.name, ort.OrtValue.ortvalue_from_numpy(array))
                outputs[info.name] = array
        slot = Slot(index, inputs, outputs, binding)
        self._bind_inputs(slot, None)
        return slot

    def submit(self, slot: Slot) -> None:
        binding = slot.handle
        for info in self.outputs:
            if info.name not in slot.outputs:  # run-time shape: let ORT allocate afresh on every run
                binding.bind_output(info.name, "cpu")
        self.session.run_with_iobinding(binding)

    def wait(self, slot: Slot) -> dict[str, np.ndarray]:
        if len(slot.outputs) == len(self.outputs):
            return slot.outputs
        # Some outputs have run-time shapes: ORT allocated them; collect all in model order.
        values = slot.handle.get_outputs()
        return {info.name: slot.outputs[info.name] if info.name in slot.outputs else value.numpy()
                for info, value in zip(self.outputs, values)}

    def close(self) -> None:
        super().close()
        self.session = None

"""The backend interface shared by ONNX Runtime (CPU) and TensorRT (GPU).

A backend owns the model's I/O buffers. Frames travel through *slots*: each slot is one complete set of
host input and output arrays. The caller writes a slot's inputs in place (the preprocessor fills them
directly, so there is no extra copy), calls :meth:`Backend.submit`, and later :meth:`Backend.wait` for
the outputs. On a GPU backend ``submit`` only enqueues host→device copies, execution and device→host
copies on a CUDA stream and returns at once; with two slots the next frame is preprocessed into slot 1
while slot 0 runs. A CPU backend may do the work inside ``submit``; callers must not rely on either.
Output arrays belong to the backend and are overwritten by the next run of the same slot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: its name, shape (``None`` for a dimension known only at run time) and dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


@dataclass
class Slot:
    """One set of host buffers. ``handle`` is the backend's own per-slot state (bindings, CUDA events…)."""

    index: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    handle: object = None


class Backend(ABC):
    """Runs one model file. Subclasses set ``name`` and fill ``inputs``, ``outputs`` and ``slots``."""

    name: ClassVar[str]
    # Whether :meth:`preprocess_frame` / :meth:`class_map` may do the work on the backend's device (the runner
    # asks only then, so the CPU path pays nothing for them).
    on_device: ClassVar[bool] = False

    def __init__(self, model_path: Path):
        self.model_path = Path(model_path)
        self.inputs: tuple[TensorInfo, ...] = ()
        self.outputs: tuple[TensorInfo, ...] = ()
        self.slots: tuple[Slot, ...] = ()
        # The precision the backend runs at where it chose it (a TensorRT engine's); None: the model file's own.
        self.precision: str | None = None

    @abstractmethod
    def submit(self, slot: Slot) -> None:
        """Starts inference on ``slot.inputs``; may return before it finishes."""

    @abstractmethod
    def wait(self, slot: Slot) -> dict[str, np.ndarray]:
        """Blocks until the run started by :meth:`submit` on ``slot`` is done; returns its host outputs."""

    def run(self, slot: Slot) -> dict[str, np.ndarray]:
        """Synchronous inference on one slot."""
        self.submit(slot)
        return self.wait(slot)

    def run_first(self, slot: Slot, count: int) -> dict[str, np.ndarray]:
        """Synchronous inference on the first ``count`` items of a batched slot (a frame's crops rarely fill
        the batch). This default runs the whole batch and trims the outputs of a partial one; a backend
        that can run a shorter batch overrides it. A full batch's outputs are returned as they are."""
        outputs = self.run(slot)
        if count == len(next(iter(slot.inputs.values()))):
            return outputs
        return {name: array[:count] for name, array in outputs.items()}

    # The GPU paths below take an edge.bundle.InputSpec and an edge.preprocess.Transform, typed Any here: this
    # module is imported by decoders (a cascade runs backends), which those modules import.

    def preprocess_frame(self, slot: Slot, index: int, image: np.ndarray, spec: Any) -> Any:
        """Preprocesses a BGR frame into batch item ``index`` of the slot's input ``spec.name`` (``spec``: the
        bundle's InputSpec) on the backend's own device, and returns the Transform back to frame pixels;
        ``None`` where the backend has no such path (this default), and the caller fills ``slot.inputs`` on
        the CPU instead. An item written here is on the device only: its host array is not filled, so it
        cannot be copied to another model's input."""
        return None

    def class_map(self, slot: Slot, index: int, output: str, transform: Any, spec: Any) -> np.ndarray | None:
        """After :meth:`wait`: the per-pixel argmax of ``output``'s class logits ([B, C, H, W]) for batch
        item ``index``, nearest-resized to the frame as ``transform`` (its Transform) says, computed where the
        logits are; ``None`` where the backend has no such path (this default), and the decoder classifies
        the host outputs itself."""
        return None

    def add_slot(self, input_shapes: dict[str, tuple[int, ...]]) -> Slot:
        """A further slot whose inputs have other shapes, for a model with dynamic dimensions (an image
        pyramid runs one network at several sizes). Backends that fix shapes at build time cannot."""
        raise NotImplementedError(f"the {self.name} backend cannot add slots of other input shapes")

    def close(self) -> None:
        """Releases the model and its buffers; the backend is unusable afterwards."""
        self.slots = ()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_shape(info: TensorInfo, override: tuple[int, ...] | None, batch: int) -> tuple[int, ...]:
    """The concrete shape to allocate for an input: the bundle's shape where given, else the model's with a
    dynamic batch set to ``batch``. Any other dynamic dimension without an override is an error."""
    if override is not None:
        return tuple(override)
    dims = list(info.shape)
    if dims and dims[0] is None:
        dims[0] = batch
    if any(d is None for d in dims):
        raise ValueError(f"input '{info.name}' has dynamic dimensions {info.shape}: give its shape in the bundle")
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]

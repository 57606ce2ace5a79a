"""Backends run a bundle's model. ``open_backend`` picks one by name; see :mod:`edge.backends.base`."""

from __future__ import annotations

from edge.backends.base import Backend, Slot, TensorInfo
from edge.bundle import Bundle
from edge.errors import UsageError

BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt")


def open_backend(bundle: Bundle, name: str = "auto", *, slots: int = 1, threads: int | None = None,
                 role: str = "model", input_shapes: dict[str, tuple[int, ...]] | None = None) -> Backend:
    """Opens the bundle's model file ``role`` on the named backend, with inputs of ``input_shapes``
    (default: the bundle's input spec).

    ``auto`` means the best backend this machine can run the bundle on. Until the TensorRT backend
    lands that is always ONNX Runtime on the CPU.
    """
    if name not in BACKEND_NAMES:
        raise UsageError(f"--backend: unknown backend '{name}' (choose from {', '.join(BACKEND_NAMES)})")
    if name == "tensorrt":
        raise UsageError("--backend tensorrt: this build of edge has no TensorRT backend yet; "
                         "use --backend onnxruntime")
    from edge.backends.onnxruntime import OnnxRuntimeBackend

    shapes = input_shapes if input_shapes is not None else {bundle.input.name: bundle.input.shape}
    return OnnxRuntimeBackend(bundle.file(role), input_shapes=shapes, slots=slots, threads=threads)


__all__ = ["BACKEND_NAMES", "Backend", "Slot", "TensorInfo", "open_backend"]

"""Backends run a bundle's model. ``open_backend`` picks one by name; see :mod:`edge.backends.base`."""

from __future__ import annotations

from collections.abc import Callable

from edge.backends.base import Backend, Slot, TensorInfo
from edge.bundle import Bundle
from edge.errors import UsageError

BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt")
# Backends defined outside edge (plugins, test doubles): name → factory(bundle, slots=, threads=).
EXTRA_BACKENDS: dict[str, Callable[..., Backend]] = {}


def open_backend(bundle: Bundle, name: str = "auto", *, slots: int = 1, threads: int | None = None) -> Backend:
    """Opens the bundle's model on the named backend.

    ``auto`` means the best backend this machine can run the bundle on. Until the TensorRT backend
    lands that is always ONNX Runtime on the CPU.
    """
    if name in EXTRA_BACKENDS:
        return EXTRA_BACKENDS[name](bundle, slots=slots, threads=threads)
    if name not in BACKEND_NAMES:
        raise UsageError(f"--backend: unknown backend '{name}' (choose from {', '.join(BACKEND_NAMES)})")
    if name == "tensorrt":
        raise UsageError("--backend tensorrt: this build of edge has no TensorRT backend yet; "
                         "use --backend onnxruntime")
    from edge.backends.onnxruntime import OnnxRuntimeBackend

    spec = bundle.input
    return OnnxRuntimeBackend(bundle.file("model"), input_shapes={spec.name: spec.shape}, slots=slots,
                              threads=threads)


__all__ = ["BACKEND_NAMES", "EXTRA_BACKENDS", "Backend", "Slot", "TensorInfo", "open_backend"]

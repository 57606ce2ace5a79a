"""Backends run a bundle's model. ``open_backend`` picks one by name; see :mod:`edge.backends.base`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from edge.backends.base import Backend, Slot, TensorInfo
from edge.bundle import Bundle
from edge.engines import EngineOptions, default_precision, read_tag
from edge.errors import EdgeError, UsageError

BACKEND_NAMES = ("auto", "onnxruntime", "tensorrt")
LOG = logging.getLogger(__name__)
# Backends defined outside edge (plugins, test doubles): name → factory(bundle, slots=, threads=).
EXTRA_BACKENDS: dict[str, Callable[..., Backend]] = {}


def open_backend(bundle: Bundle, name: str = "auto", *, slots: int = 1, threads: int | None = None,
                 allow_build: bool = True, role: str = "model",
                 input_shapes: dict[str, tuple[int, ...]] | None = None) -> Backend:
    """Opens the bundle's model file ``role`` on the named backend, with inputs of ``input_shapes``
    (default: the bundle's input spec).

    ``auto`` means TensorRT when it runs here and the bundle has an engine for this machine (one that no
    longer fits is rebuilt from the bundle's ONNX if ``allow_build``), else ONNX Runtime on the CPU; the
    reason is logged. ``tensorrt`` fails with one clear line where ``auto`` would fall back. Engines are built
    for the bundle's main model at its input spec only, so the other files of a multi-model bundle (MTCNN's
    stages, opened by ``role``) and custom input shapes run on ONNX Runtime. On ONNX Runtime the main model is
    ``files.model_cpu`` where the bundle has one (see :mod:`calibration.quantize_bundle`): TensorRT reads
    ``files.model``.
    """
    if name in EXTRA_BACKENDS:
        return EXTRA_BACKENDS[name](bundle, slots=slots, threads=threads)
    if name not in BACKEND_NAMES:
        raise UsageError(f"--backend: unknown backend '{name}' (choose from {', '.join(BACKEND_NAMES)})")
    if name != "onnxruntime" and role == "model" and input_shapes is None:
        backend = _open_tensorrt(bundle, name, slots, allow_build)
        if backend is not None:
            return backend
    from edge.backends.onnxruntime import OnnxRuntimeBackend

    shapes = input_shapes if input_shapes is not None else {bundle.input.name: bundle.input.shape}
    cpu_file = role == "model" and "model_cpu" in bundle.files  # an int8 bundle's pick for the CPU
    backend = OnnxRuntimeBackend(bundle.file("model_cpu" if cpu_file else role), input_shapes=shapes, slots=slots,
                                 threads=threads)
    if cpu_file:
        backend.precision = bundle.cpu_precision
    return backend


def _open_tensorrt(bundle: Bundle, name: str, slots: int, allow_build: bool) -> Backend | None:
    """The TensorRT backend, or ``None`` (logged) where ``auto`` falls back to ONNX Runtime."""
    from edge.backends.select import choose_backend, gather_facts

    unavailable, candidates = gather_facts(bundle)
    choice = choose_backend(name, bundle.root, unavailable=unavailable, candidates=candidates,
                            allow_build=allow_build, default=EngineOptions(default_precision(bundle)))
    if choice.backend == "onnxruntime":
        # Where TensorRT could run, running on the CPU is news; on a machine without it, the ordinary case.
        level = logging.INFO if unavailable else logging.WARNING
        LOG.log(level, "%s: ONNX Runtime: %s", bundle.name, choice.reason)
        return None
    try:
        if choice.build is not None:
            LOG.warning("%s: %s", bundle.name, choice.reason)
        engine = choice.engine or _build(bundle, choice.build)
        from edge.backends.tensorrt import open_engine

        backend = open_engine(engine, input_shapes={bundle.input.name: bundle.input.shape}, slots=slots,
                              options=read_tag(engine).options)
    except EdgeError as e:
        if name == "tensorrt":
            raise
        LOG.warning("%s: ONNX Runtime: TensorRT failed (%s)", bundle.name, e)
        return None
    LOG.info("%s: TensorRT: %s", bundle.name, choice.reason)
    return backend


def _build(bundle: Bundle, options: EngineOptions | None) -> Path:
    from edge.backends.builder import build_engine  # imports TensorRT's pieces only once a build is due

    assert options is not None  # a Choice without an engine holds build options
    return build_engine(bundle, options, reuse=True)  # another process may have built it meanwhile


__all__ = ["BACKEND_NAMES", "EXTRA_BACKENDS", "Backend", "Slot", "TensorInfo", "open_backend"]

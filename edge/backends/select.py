"""Which backend runs a bundle: TensorRT with a matching engine, a rebuilt engine, or ONNX Runtime — and why.

:func:`choose_backend` is the decision, a pure function of facts gathered by :func:`gather_facts`, so every
branch is tested on machines without TensorRT. Its ``reason`` is the one line the runtime logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.bundle import Bundle, sha256_file
from edge.engines import EngineOptions, EngineTag, engine_folder, list_engines, mismatches
from edge.errors import EdgeError, UsageError

# With several usable engines, the lowest precision wins: it was built on purpose and is the fastest.
_PREFERENCE = {"int8": 2, "fp16": 1, "fp32": 0}


@dataclass(frozen=True)
class Candidate:
    """An engine found beside the bundle, with the reasons it does not fit (none: it does)."""

    path: Path
    tag: EngineTag
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Choice:
    """``backend`` is ``"tensorrt"`` or ``"onnxruntime"``. For TensorRT, either ``engine`` is the plan to load
    or ``build`` holds the options to (re)build one with first."""

    backend: str
    reason: str
    engine: Path | None = None
    build: EngineOptions | None = None


def choose_backend(requested: str, bundle_root: Path, *, unavailable: str | None,
                   candidates: Sequence[Candidate], allow_build: bool, default: EngineOptions) -> Choice:
    """The decision. ``unavailable`` says why TensorRT cannot run here (``None``: it can); ``default`` are the
    options of a first build (the bundle's own precision: int8 for a quantized bundle).

    ``auto`` never fails: it falls back to ONNX Runtime and says why. ``tensorrt`` fails with one
    :class:`UsageError` line where ``auto`` would fall back.
    """
    if requested == "onnxruntime":
        return Choice("onnxruntime", "--backend onnxruntime")
    explicit = requested == "tensorrt"
    if unavailable:
        if explicit:
            raise UsageError(f"--backend tensorrt: {unavailable}")
        return Choice("onnxruntime", f"TensorRT cannot run here ({unavailable})")
    usable = [c for c in candidates if not c.problems]
    if usable:
        best = max(usable, key=lambda c: (_PREFERENCE.get(c.tag.options.precision, -1), c.tag.created))
        return Choice("tensorrt", f"engine {best.path.name}", engine=best.path)
    rebuild_hint = f"rebuild it with 'edge build-engine {bundle_root}'"
    if candidates:
        stale = max(candidates, key=lambda c: _PREFERENCE.get(c.tag.options.precision, -1))
        why = f"engine {stale.path.name} does not fit: {'; '.join(stale.problems)}"
        if allow_build:
            return Choice("tensorrt", f"{why}; rebuilding it from the bundle's ONNX", build=stale.tag.options)
        if explicit:
            raise UsageError(f"--backend tensorrt: {why}; {rebuild_hint}")
        return Choice("onnxruntime", f"{why}, and engine builds are not allowed here ({rebuild_hint})")
    if explicit:
        if allow_build:
            return Choice("tensorrt", f"no engine yet for this bundle: building one ({default.precision})",
                          build=default)
        raise UsageError(f"--backend tensorrt: {bundle_root} has no TensorRT engine; build one with "
                         f"'edge build-engine {bundle_root}'")
    return Choice("onnxruntime", f"no TensorRT engine for this bundle (build one with 'edge build-engine "
                                 f"{bundle_root}')")


def gather_facts(bundle: Bundle) -> tuple[str | None, list[Candidate]]:
    """Whether TensorRT can run here (``None`` or why not) and the engines beside the bundle, checked."""
    from edge.backends.tensorrt import runtime_target  # imports TensorRT only once it is known to be there

    try:
        target = runtime_target()
    except EdgeError as e:
        return str(e), []
    onnx_sha256 = sha256_file(bundle.file("model"))
    shapes = {bundle.input.name: bundle.input.shape}
    candidates = [Candidate(path, tag, tuple(mismatches(path, tag, onnx_sha256=onnx_sha256, target=target,
                                                         input_shapes=shapes)))
                  for path, tag in list_engines(engine_folder(bundle))]
    return None, candidates

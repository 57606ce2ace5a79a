"""What ``edge bench`` runs: the bundles and the source (sample names resolved), the backends and precisions
this machine has for them, and the sweep of inference workers × threads per worker.

A ``--bundle`` is a bundle folder or the name of one of the samples ``edge demo`` builds (``yolox_nano``,
``espnetv2_voc``, ``movenet_topdown``), built once from the assets into ``~/.cache/edge/bundles``. A
``--source`` that is no file here but is the name of a sample video is taken from the assets.

Backends: ONNX Runtime always (at the precision it runs: the bundle's, or ``cpu_precision`` where an int8
bundle has a CPU variant); TensorRT once per precision for which every bundle has an engine that fits this
machine (each precision registered as a backend of its own, ``tensorrt-<precision>``, so the runners open
exactly that engine). Where TensorRT cannot run, the reason is kept for the report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge import demo
from edge.backends import EXTRA_BACKENDS
from edge.bundle import Bundle, load_bundle
from edge.errors import BadInputError, UsageError
from streams.uris import is_live

SAMPLES = {"yolox_nano": demo.yolox_bundle, "espnetv2_voc": demo.espnet_bundle, "movenet_topdown": demo.movenet_bundle}
SWEEP_STEPS = (1, 2, 4, 8)


def cache_folder() -> Path:
    """Where sample bundles are built: ``$XDG_CACHE_HOME/edge/bundles`` (``~/.cache/edge/bundles``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge" / "bundles"


def resolve_bundles(names: Sequence[str]) -> list[Bundle]:
    """Bundle folders, or sample names built from the assets (once)."""
    bundles = []
    for name in names:
        if Path(name).exists():
            bundles.append(load_bundle(name))
        elif name in SAMPLES:
            bundles.append(SAMPLES[name](demo.find_assets(), cache_folder()))
        else:
            raise UsageError(f"--bundle: '{name}' is neither a bundle folder nor a sample bundle "
                             f"({', '.join(SAMPLES)})")
    return bundles


def resolve_source(source: str) -> str:
    """``source`` as given, or the sample video of that name from the assets."""
    if is_live(source) or Path(source).exists() or any(c in source for c in "*?["):
        return source
    try:
        sample = demo.find_assets() / "videos" / source
    except BadInputError:
        sample = None
    if sample is not None and sample.is_file():
        return str(sample)
    raise BadInputError(f"--source: {source}: no such file (nor a sample video of the assets)")


@dataclass(frozen=True)
class BackendChoice:
    """One backend configuration to measure: ``name`` is what the runners open (a :data:`BACKEND_NAMES` value
    or a ``tensorrt-<precision>`` registered here), ``backend`` the family and ``precision`` the engines'."""

    name: str
    backend: str
    precision: str | None = None  # None: what the backend opens (ONNX Runtime: the bundle's)


def tensorrt_engines(bundles: Sequence[Bundle]) -> tuple[dict[str, dict[str, Path]], str | None]:
    """For each precision, the engine of every bundle that fits this machine (only precisions all bundles
    have); and why TensorRT is left out, if it is."""
    from edge.backends.select import gather_facts

    per_bundle: dict[str, dict[str, Path]] = {}
    for bundle in bundles:
        unavailable, candidates = gather_facts(bundle)
        if unavailable:
            return {}, unavailable
        usable = {c.tag.options.precision: c.path for c in sorted(candidates, key=lambda c: c.tag.created)
                  if not c.problems}
        if not usable:
            return {}, f"no TensorRT engine of {bundle.name} fits this machine (edge build-engine {bundle.root})"
        per_bundle[bundle.name] = usable
    common = set.intersection(*(set(found) for found in per_bundle.values()))
    if not common:
        return {}, "the bundles have no engine precision in common"
    return {p: {name: found[p] for name, found in per_bundle.items()} for p in sorted(common)}, None


def _engine_opener(engines: dict[str, Path]):
    """A backend factory (:data:`EXTRA_BACKENDS`) that opens each bundle's given engine."""
    def open_engine_of(bundle: Bundle, slots: int = 1, threads: int | None = None):
        from edge.backends.tensorrt import open_engine
        from edge.engines import read_tag

        path = engines[bundle.name]
        return open_engine(path, input_shapes={bundle.input.name: bundle.input.shape}, slots=slots,
                           options=read_tag(path).options)

    return open_engine_of


def backend_choices(bundles: Sequence[Bundle], wanted: str) -> tuple[list[BackendChoice], dict[str, str]]:
    """The configurations to measure (TensorRT ones registered as backends) and those left out, with why."""
    choices, skipped = [], {}
    if wanted in ("auto", "onnxruntime"):
        choices.append(BackendChoice("onnxruntime", "onnxruntime"))
    if wanted in ("auto", "tensorrt"):
        engines, why = tensorrt_engines(bundles)
        if why:
            skipped["tensorrt"] = why
        for precision, paths in engines.items():
            name = f"tensorrt-{precision}"
            EXTRA_BACKENDS[name] = _engine_opener(paths)
            choices.append(BackendChoice(name, "tensorrt", precision))
    if not choices:
        raise UsageError(f"--backend {wanted}: cannot run here ({skipped.get('tensorrt', 'no backend')})")
    return choices, skipped


def forget(choices: Sequence[BackendChoice]) -> None:
    """Unregisters the TensorRT configurations :func:`backend_choices` registered."""
    for choice in choices:
        if choice.backend == "tensorrt":
            EXTRA_BACKENDS.pop(choice.name, None)


def sweep_steps(cpus: int) -> list[int]:
    """1, 2, 4, 8 up to the CPUs: the default values of ``--workers`` and ``--threads``."""
    return [n for n in SWEEP_STEPS if n <= max(1, cpus)]

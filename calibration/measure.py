"""Running one model file of a bundle as the user will: per-frame results for the agreement metrics, and latency.

The INT8 gate and the pruning/distillation report (``compile/report.py``) both compare a changed model with
the original through the runtime itself: edge's preprocessing, ONNX Runtime, the bundle's decoder, so that a
difference the user would see is a difference measured here, and nothing else is.

A Q/DQ model made for TensorRT is run with its Q/DQ pairs as written (:data:`AS_TENSORRT`): TensorRT computes
exactly what they describe, while ONNX Runtime's fused int8 kernels can differ from it. ONNX Runtime 1.32 fuses
ESPNetv2's pooling MatMuls with per-column weight scales into ``MatMulIntegerToFloat`` and gets whole output columns
wrong there (0.006 where the Q/DQ graph gives 0.372); fused, the model scores 0.86 fwIoU, as written 0.97.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from calibration.agreement import Agreement, FrameDetections, agreement, perturb
from edge.backends import EXTRA_BACKENDS, Backend
from edge.backends.onnxruntime import OnnxRuntimeBackend, open_session
from edge.bundle import Bundle, InputSpec
from edge.errors import UsageError
from edge.results import Classification, Detections, Poses, Segmentation
from edge.runner import Runner

LATENCY_RUNS = 30
CANDIDATE_SCORE = 0.01  # detection candidates keep boxes down to this score (see candidate_bundle)
AS_TENSORRT = "onnxruntime-unfused"  # the backend that runs Q/DQ pairs as written (see the module docstring)


def _open_unfused(bundle: Bundle, *, slots: int, threads: int | None) -> Backend:
    return OnnxRuntimeBackend(bundle.file("model"), input_shapes={bundle.input.name: bundle.input.shape},
                              slots=slots, threads=threads, fuse_int8=False)


EXTRA_BACKENDS[AS_TENSORRT] = _open_unfused


def with_model(bundle: Bundle, model: Path) -> Bundle:
    """The bundle with ``model`` as its model file (and no separate CPU file), for running one candidate."""
    files = {role: str(bundle.file(role)) for role in bundle.files if role not in ("model", "model_cpu")}
    return replace(bundle, files={**files, "model": str(Path(model).resolve())})


def predictions(bundle: Bundle, frames: Sequence[np.ndarray], model: Path | None = None, *,
                as_tensorrt: bool = False) -> list:
    """Per-frame results of ``model`` (default: the bundle's own) in the form :mod:`calibration.agreement` takes:
    :class:`FrameDetections`, class maps, ``[P, K, 3]`` keypoints or top-1 class ids. ``as_tensorrt``: Q/DQ pairs
    run as written, not through ONNX Runtime's int8 kernels."""
    if bundle.needs:
        raise UsageError(f"{bundle.root}: a bundle that runs on another bundle's results (needs.{bundle.needs.kind}) "
                         f"cannot be measured on its own")
    runner = Runner(with_model(bundle, model) if model is not None else bundle,
                    AS_TENSORRT if as_tensorrt else "onnxruntime")
    try:
        return [_comparable(runner(frame)) for frame in frames]
    finally:
        runner.close()


def candidate_bundle(bundle: Bundle) -> Bundle:
    """The bundle as a candidate is run against a reference: a detector keeps its boxes down to
    :data:`CANDIDATE_SCORE`, as COCO evaluation does, so that mAP judges how the candidate ranks the objects the
    reference found (at the bundle's own threshold) rather than which boxes cross that threshold by a hair."""
    if bundle.task != "detection":
        return bundle
    low = min(bundle.thresholds.score, CANDIDATE_SCORE)
    return replace(bundle, thresholds=replace(bundle.thresholds, score=low))


def noise_floor(bundle: Bundle, frames: Sequence[np.ndarray], reference: list | None = None,
                seed: int = 0) -> Agreement:
    """The bundle's model against itself on ``frames`` as a camera could as well have delivered them
    (:func:`calibration.agreement.perturb`): the best agreement any changed model can be asked for.

    ``reference``: the model's results on the unperturbed frames, when already at hand."""
    rng = np.random.default_rng(seed)
    perturbed = [perturb(frame, rng) for frame in frames]
    if reference is None:
        reference = predictions(bundle, frames)
    return agreement(bundle.task, reference, predictions(candidate_bundle(bundle), perturbed))


def _comparable(result: object) -> object:
    if isinstance(result, Detections):
        return FrameDetections(result.boxes.copy(), result.scores.copy(), result.class_ids.copy())
    if isinstance(result, Segmentation):
        return result.class_map.copy()
    if isinstance(result, Poses):
        return result.keypoints.copy()
    if isinstance(result, Classification):
        return int(result.class_ids[0])
    raise UsageError(f"results of type {type(result).__name__} have no agreement metric")


def cpu_latencies_ms(models: Sequence[Path], spec: InputSpec, runs: int = LATENCY_RUNS, warmup: int = 3,
                     turn: int = 5) -> list[float]:
    """Median wall time of one inference of each model with ONNX Runtime on this CPU, on one random input, after
    ``warmup`` runs each.

    The models take turns, ``turn`` runs at a time, until each has run ``runs`` times. What else a shared
    machine runs changes over seconds: timed one after the other, a pruned YOLOX-nano read 16.5 ms before its
    reconstruction and 9.4 ms after (the same layers, other weights). Taking turns lays the same load on every
    model, so their ratios, what a report compares, hold."""
    sessions = [open_session(model) for model in models]
    rng = np.random.default_rng(0)
    feed = {spec.name: rng.integers(0, 256, spec.shape).astype(spec.dtype) if spec.dtype == "uint8"
            else rng.random(spec.shape, np.float32)}
    for session in sessions:
        for _ in range(warmup):
            session.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for done in range(0, runs, turn):
        for session, taken in zip(sessions, times):
            for _ in range(min(turn, runs - done)):
                start = time.perf_counter()
                session.run(None, feed)
                taken.append(time.perf_counter() - start)
    return [float(np.median(taken) * 1000) for taken in times]

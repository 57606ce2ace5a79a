"""The keep-in-float search: which few layers, left in float, bring an int8 model within the gate.

Layers are ranked by their *measured* effect: each is quantized alone (every other layer in float, a graph edit:
:mod:`calibration.qdq_edit`) and the model is scored against fp32 on the search frames (calibration frames, never
the gate's). The worst-channel SQNR of :mod:`calibration.sensitivity` only orders which layers are measured first,
as many as the time budget allows; unmeasured layers follow in that order. Then the fewest of the ranked layers
that pass are found on the gate's frames: doubling (1, 2, 4, ...) up to the allowed share, then bisection between
the last failure and the first pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from calibration.agreement import agreement
from calibration.measure import candidate_bundle, predictions
from calibration.qdq_edit import only_quantized
from edge.bundle import Bundle
from edge.progress import bar


class Probe:
    """Scores edited models against fp32 on a few frames (the search frames)."""

    def __init__(self, bundle: Bundle, frames: Sequence[np.ndarray], scratch: Path):
        self.bundle, self.frames, self.path = bundle, list(frames), scratch / "probe.onnx"
        self.candidate = candidate_bundle(bundle)
        self.reference = predictions(bundle, self.frames)

    def __call__(self, model: onnx.ModelProto) -> float:
        onnx.save(model, str(self.path))
        found = predictions(self.candidate, self.frames, self.path, as_tensorrt=True)
        return agreement(self.bundle.task, self.reference, found).score


def rank_by_effect(model: onnx.ModelProto, order: Sequence[str], probe: Callable[[onnx.ModelProto], float],
                   budget_s: float) -> tuple[list[str], dict[str, float]]:
    """``order``'s layers, those measured within ``budget_s`` first (lowest score alone-quantized first), and
    the measured scores."""
    measured: dict[str, float] = {}
    started = time.monotonic()
    with bar(total=len(order), desc="layers quantized one at a time", unit="layer") as progress:
        for layer in order:
            if time.monotonic() - started > budget_s:
                break
            measured[layer] = probe(only_quantized(model, layer))
            progress.update(1)
    ranked = sorted(measured, key=measured.__getitem__)
    return ranked + [layer for layer in order if layer not in measured], measured


def fewest_in_float(evaluate: Callable[[list[str]], object], passes: Callable[[object], bool],
                    ranked: Sequence[str], limit: int) -> tuple[object | None, list]:
    """The first passing trial of the fewest ``ranked`` layers in float (at most ``limit``), or None; and every
    trial made, in order. ``evaluate(layers)`` makes and scores one trial."""
    tried: list = []
    if limit < 1 or not ranked:
        return None, tried
    limit = min(limit, len(ranked))
    failed, count = 0, 1
    while True:
        tried.append(evaluate(list(ranked[:count])))
        if passes(tried[-1]) or count == limit:
            break
        failed, count = count, min(count * 2, limit)
    if not passes(tried[-1]):
        return None, tried
    passed = tried[-1]
    while count - failed > 1:
        middle = (failed + count) // 2
        tried.append(evaluate(list(ranked[:middle])))
        if passes(tried[-1]):
            passed, count = tried[-1], middle
        else:
            failed = middle
    return passed, tried

"""``edge quantize``: an fp32 bundle → an INT8 bundle that passed the accuracy gate, or no bundle at all.

Steps: calibration set (:mod:`calibration.dataset`) → the gate's reference and noise floor (:mod:`calibration.gate`)
→ the model made ready (:func:`calibration.ptq.prepare`) and equalized (:mod:`calibration.equalize`) → one
TensorRT-style s8s8 Q/DQ model per calibration method, with and without equalization, each also with its biases
corrected (:mod:`calibration.bias_correction`), each scored by the gate →
while the best falls short: the keep-in-float search (:mod:`calibration.search`, at most ``max_float`` of the
weighted layers), then, with ``--qat STEPS``, quantization-aware distillation (:mod:`calibration.qat`) and the
search again on its result → lint (:mod:`calibration.lint`) → the CPU variant (u8s8) and the latencies → the
bundle. Everything is made in a scratch folder; ``--out`` is written only when the gate passed.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from calibration.agreement import Agreement
from calibration.bias_correction import correct_biases
from calibration.dataset import calibration_set
from calibration.equalize import equalize
from calibration.gate import Gate
from calibration.labels import load_labels
from calibration.lint import lint_qdq
from calibration.ptq import CPU, METHODS, TENSORRT, TensorReader, convert_opset, prepare, quantize
from calibration.qdq_edit import keep_in_float, quantized_layers, weighted_layers
from calibration.report import build_report, failure, format_report, write_int8_bundle
from calibration.search import Probe, fewest_in_float, rank_by_effect
from calibration.sensitivity import rank_nodes
from edge.bundle import Bundle
from edge.decoders import DECODERS, Cascade
from edge.errors import EdgeError, UsageError
from edge.progress import say

__all__ = ["GateFailed", "QuantizeConfig", "Quantized", "Trial", "format_report", "quantize_bundle"]

SENSITIVITY_FRAMES = 4  # calibration frames the per-tensor noise is measured on (all tensors are kept in memory)
BIAS_FRAMES = 16  # calibration frames each layer's mean output shift is measured on
PROBE_FRAMES = 12  # search frames each layer is measured on alone (a ranking, not a verdict: the gate judges)
DEFAULT_METHOD = "percentile"


@dataclass(frozen=True)
class QuantizeConfig:
    """What ``edge quantize`` / ``edge compile --int8`` were asked for."""

    sources: tuple[str, ...]
    method: str = DEFAULT_METHOD
    max_drop: float = 0.01
    frames: int = 128
    holdout: int = 128
    cache: Path | None = None
    qat_steps: int = 0
    val: str | None = None
    search_budget_s: float = 300.0
    max_float: float = 0.05

    def __post_init__(self) -> None:
        if not self.sources:
            raise UsageError("--calib: give at least one calibration SOURCE (a video, an image folder or a glob)")
        if self.method not in (*METHODS, "auto"):
            raise UsageError(f"--method: unknown method '{self.method}' (choose from {', '.join(METHODS)}, auto)")
        if not 0 <= self.max_drop <= 1:
            raise UsageError(f"--max-drop: {self.max_drop} is not a fraction in 0..1 (0.01 allows a drop of 0.01 "
                             f"below fp32's noise floor, 1 turns the gate off)")
        if not 0 <= self.max_float <= 1:
            raise UsageError(f"--max-float: {self.max_float} is not a fraction in 0..1")
        if self.qat_steps < 0 or self.search_budget_s < 0:
            raise UsageError("--qat and --search-budget take a count and seconds of at least 0")


class GateFailed(EdgeError):
    """No int8 model within the allowed drop (exit 4); nothing was written."""


@dataclass
class Trial:
    """One quantized candidate and its gate score."""

    name: str  # "percentile", "percentile+equalized+bias", "qat+equalized", ...
    method: str
    equalized: bool
    corrected: bool
    kept_in_float: list[str]
    agreement: Agreement
    path: Path = field(repr=False)
    source: Path = field(repr=False)  # the fp32 model it was quantized from (the CPU variant starts there too)
    ranges: Path = field(repr=False)  # its calibration cache (the CPU variant reuses it)

    @property
    def score(self) -> float:
        return self.agreement.score


@dataclass
class Quantized:
    bundle: Bundle
    report: dict[str, Any]


class _Run:
    """One ``edge quantize``: the state the steps share."""

    def __init__(self, bundle: Bundle, config: QuantizeConfig, scratch: Path):
        self.bundle, self.config, self.scratch = bundle, config, scratch
        self.calibration = calibration_set(bundle.input, config.sources, config.frames, config.holdout, config.cache)
        labels = load_labels(config.val, bundle) if config.val else None
        self.gate = Gate(bundle, self.calibration.holdout, config.max_drop, labels)
        say(f"gate: fp32 floor {self.gate.floor.describe()}; required >= {self.gate.required:.4f}")
        self.batches = list(self.calibration.batches())
        self.reader = TensorReader(bundle.input.name, self.batches)
        self.prepared = prepare(bundle.file("model"), scratch / "prepared.onnx")
        self.equalized, self.rescaled = equalize(self.prepared, scratch / "equalized.onnx", self.batches,
                                                 bundle.input.name)
        self.weighted = weighted_layers(onnx.load(str(self.prepared)))
        self.limit = int(self.weighted * config.max_float)
        self.searches: dict[str, dict] = {}
        self.probe: Probe | None = None

    def ptq(self, method: str, equalized: bool) -> list[Trial]:
        """The method's quantization of the plain or equalized model, and the same with biases corrected."""
        source = self.equalized if equalized else self.prepared
        name = method + ("+equalized" if equalized else "")
        say(f"quantize: {name}")
        ranges = self.scratch / f"{name}.ranges.json"
        path = quantize(source, self.scratch / f"{name}.onnx", self.reader, method, TENSORRT, ranges)
        trial = self._scored(Trial(name, method, equalized, False, [], self.gate.score(path), path, source, ranges))
        return [trial, self.corrected(trial)]

    def corrected(self, trial: Trial, on_cpu: bool = False) -> Trial:
        path = correct_biases(trial.path, self.scratch / f"{trial.name}+bias.onnx",
                              self.batches[:BIAS_FRAMES], self.bundle.input.name)
        return self._scored(Trial(f"{trial.name}+bias", trial.method, trial.equalized, True, [],
                                  self.gate.score(path, on_cpu=on_cpu), path, trial.source, trial.ranges))

    def _scored(self, trial: Trial) -> Trial:
        say(f"  {trial.name}, {len(trial.kept_in_float)} layer(s) in float: {trial.agreement.describe()}")
        return trial

    def search(self, trial: Trial) -> Trial:
        """The fewest layers of ``trial`` kept in float that pass, or the best found; recorded for the report."""
        model = onnx.load(str(trial.path))
        layers = quantized_layers(model)
        sqnr = [n for n in rank_nodes(trial.path, self.batches[:SENSITIVITY_FRAMES], self.bundle.input.name,
                                      self.scratch) if n in set(layers)]
        order = sqnr + [n for n in layers if n not in set(sqnr)]
        if self.probe is None:
            frames = self.calibration.search or self.calibration.holdout
            self.probe = Probe(self.bundle, frames[:PROBE_FRAMES], self.scratch)
        started = time.monotonic()
        ranked, measured = rank_by_effect(model, order, self.probe, self.config.search_budget_s)

        def evaluate(kept: list[str]) -> Trial:
            path = self.scratch / f"{trial.name}.float{len(kept)}.onnx"
            onnx.save(keep_in_float(model, kept), str(path))
            return self._scored(Trial(trial.name, trial.method, trial.equalized, trial.corrected, kept,
                                      self.gate.score(path), path, trial.source, trial.ranges))

        passed, tried = fewest_in_float(evaluate, lambda t: self.gate.passes(t.agreement), ranked, self.limit)
        self.searches[trial.name] = {
            "measured_alone": {layer: round(score, 4) for layer, score in sorted(measured.items(),
                                                                                  key=lambda item: item[1])},
            "trials": [[len(t.kept_in_float), t.score] for t in tried], "seconds": time.monotonic() - started}
        return passed or max([trial, *tried], key=lambda t: t.score)

    def qat(self, start: Trial) -> Trial:
        from calibration.qat import quantization_aware_distillation

        converted = convert_opset(self.bundle.file("model"), self.scratch / "qat.source.onnx")
        source, _ = equalize(converted, self.scratch / "qat.equalized.onnx", self.batches, self.bundle.input.name)
        result = quantization_aware_distillation(source, self.bundle, self.calibration.tensors,
                                                 self.config.qat_steps, self.scratch)
        self.qat_result = result
        trial = self._scored(Trial("qat+equalized", start.method, True, False, [], self.gate.score(result.quantized),
                                   result.quantized, prepare(result.weights, self.scratch / "qat.prepared.onnx"),
                                   self.scratch / "qat.ranges.json"))
        return max([trial, self.corrected(trial)], key=lambda t: t.score)


def quantize_bundle(bundle: Bundle, out: Path, config: QuantizeConfig) -> Quantized:
    """Quantizes ``bundle`` and writes the int8 bundle to ``out``; raises :class:`GateFailed` (writing nothing)
    when no candidate passes the gate."""
    if bundle.precision == "int8":
        raise UsageError(f"{bundle.root}: the bundle is already int8; quantize its fp32 original")
    if bundle.needs or issubclass(DECODERS[bundle.decoder], Cascade):
        raise UsageError(f"{bundle.root}: edge quantize takes bundles that run one model on whole frames; this one "
                         f"runs on another bundle's results or as a cascade")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edge-quantize-") as folder:
        run = _Run(bundle, config, Path(folder))
        methods = list(METHODS) if config.method == "auto" else [config.method]
        tried = [trial for equalized in (False, True) for method in methods for trial in run.ptq(method, equalized)]
        best = max(tried, key=lambda t: t.score)
        if not run.gate.passes(best.agreement) and run.limit:
            best = run.search(best)
        qat = None
        if not run.gate.passes(best.agreement) and config.qat_steps:
            qat = run.qat(best)
            if not run.gate.passes(qat.agreement) and run.limit:
                qat = run.search(qat)
            best = max([best, qat], key=lambda t: t.score)
        if not run.gate.passes(best.agreement):
            raise GateFailed(failure(bundle, run.gate, best, tried, qat, run.limit, run.weighted))
        lint_qdq(onnx.load(str(best.path)))
        say("quantize: the CPU variant (u8s8)")
        cpu_path = quantize(best.source, run.scratch / "u8s8.onnx", run.reader, best.method, CPU, best.ranges,
                            best.kept_in_float)
        cpu = Trial("u8s8", best.method, best.equalized, False, best.kept_in_float,
                    run.gate.score(cpu_path, on_cpu=True), cpu_path, best.source, best.ranges)
        if best.corrected:
            cpu = max([cpu, run.corrected(cpu, on_cpu=True)], key=lambda t: t.score)
        report = build_report(bundle, config, run, tried, best, cpu, qat, time.monotonic() - started)
        return Quantized(write_int8_bundle(bundle, out, best.path, cpu.path, report), report)

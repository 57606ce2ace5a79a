"""``edge quantize``: an fp32 bundle → an INT8 bundle that passed the accuracy gate, or no bundle at all.

Steps: calibration set (:mod:`calibration.dataset`) → the model made ready (:func:`calibration.ptq.prepare`)
→ one TensorRT-style s8s8 Q/DQ model per calibration method, each scored by the gate → if the best falls
short, the most sensitive layers (:mod:`calibration.sensitivity`) are kept in float, as few as pass → lint
(:mod:`calibration.lint`) → the CPU variant (u8s8) and the latencies → the bundle.

The gate runs the fp32 and int8 models through the runtime (edge's preprocessing, ONNX Runtime, the bundle's
decoder) on held-out frames that calibration never saw, and scores int8 against fp32 taken as ground truth
(:func:`calibration.agreement.task_agreement`). fp32 scores 1.0 against itself, so ``--max-drop 0.01`` (1 %
relative) requires a score of at least 0.99. Everything is made in a scratch folder; ``--out`` is written only
when the gate passed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from calibration.agreement import METRICS, task_agreement
from calibration.dataset import CalibrationSet, calibration_set, progress
from calibration.lint import lint_qdq
from calibration.measure import cpu_latency_ms, predictions, segmentation_classes
from calibration.ptq import CPU, METHODS, TENSORRT, TensorReader, Variant, prepare, quantize
from calibration.sensitivity import rank_nodes
from edge.bundle import Bundle, write_bundle
from edge.decoders import DECODERS, Cascade
from edge.errors import EdgeError, UsageError
from edge.paths import make_out_dir

MAX_FLOAT_SHARE = 0.25  # an "int8" model with more than a quarter of its layers in float is not worth shipping
CANDIDATE_SCORE = 0.01  # detection candidates keep boxes down to this score (see Gate)
SENSITIVITY_FRAMES = 4  # calibration frames the per-tensor noise is measured on (all tensors are kept in memory)


@dataclass(frozen=True)
class QuantizeConfig:
    """What ``edge quantize`` / ``edge compile --int8`` were asked for."""

    sources: tuple[str, ...]
    method: str = "auto"
    max_drop: float = 0.01
    frames: int = 128
    holdout: int = 32
    cache: Path | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise UsageError("--calib: give at least one calibration SOURCE (a video, an image folder or a glob)")
        if self.method not in (*METHODS, "auto"):
            raise UsageError(f"--method: unknown method '{self.method}' (choose from {', '.join(METHODS)}, auto)")
        if not 0 <= self.max_drop <= 1:
            raise UsageError(f"--max-drop: {self.max_drop} is not a fraction in 0..1 (0.01 allows a 1 % drop, "
                             f"1 turns the gate off)")


class GateFailed(EdgeError):
    """No int8 model within the allowed drop (exit 4); nothing was written."""


@dataclass
class Trial:
    """One quantized candidate and its gate score."""

    method: str
    kept_in_float: list[str]
    metric: float
    path: Path = field(repr=False)


@dataclass
class Quantized:
    bundle: Bundle
    report: dict[str, Any]


class Gate:
    """Scores candidate ONNX files against the fp32 bundle on the held-out frames.

    The fp32 reference is what the user sees (the bundle's score threshold); a detection candidate keeps its boxes
    down to :data:`CANDIDATE_SCORE`, as COCO evaluation does, so that mAP judges how int8 ranks the objects fp32
    found rather than which boxes happen to cross the threshold by a hair (fp32 still scores 1.0 against itself).
    """

    def __init__(self, bundle: Bundle, calibration: CalibrationSet, max_drop: float):
        self.bundle, self.frames = bundle, calibration.holdout
        self.required = 1.0 - max_drop
        self.classes = segmentation_classes(bundle) if bundle.task == "segmentation" else 0
        progress(f"gate: running fp32 on {len(self.frames)} held-out frames")
        self.reference = predictions(bundle, self.frames)
        low = min(bundle.thresholds.score, CANDIDATE_SCORE)
        self.candidate = replace(bundle, thresholds=replace(bundle.thresholds, score=low)) \
            if bundle.task == "detection" else bundle

    def score(self, model: Path) -> float:
        return task_agreement(self.bundle.task, self.reference, predictions(self.candidate, self.frames, model),
                              self.classes)


def quantize_bundle(bundle: Bundle, out: Path, config: QuantizeConfig) -> Quantized:
    """Quantizes ``bundle`` and writes the int8 bundle to ``out``; raises :class:`GateFailed` (writing nothing)
    when no candidate passes the gate."""
    if bundle.precision == "int8":
        raise UsageError(f"{bundle.root}: the bundle is already int8; quantize its fp32 original")
    if bundle.needs or issubclass(DECODERS[bundle.decoder], Cascade):
        raise UsageError(f"{bundle.root}: edge quantize takes bundles that run one model on whole frames; this one "
                         f"runs on another bundle's results or as a cascade")
    with tempfile.TemporaryDirectory(prefix="edge-quantize-") as folder:
        scratch = Path(folder)
        calibration = calibration_set(bundle.input, config.sources, config.frames, config.holdout, config.cache)
        gate = Gate(bundle, calibration, config.max_drop)
        prepared = prepare(bundle.file("model"), scratch / "prepared.onnx")
        batches = list(calibration.batches())
        reader = TensorReader(bundle.input.name, batches)

        def candidate(method: str, variant: Variant, kept: list[str]) -> Trial:
            progress(f"quantize: {variant.name} {method}, {len(kept)} layer(s) in float")
            path = scratch / f"{variant.name}.{method}.{len(kept)}.onnx"
            quantize(prepared, path, reader, method, variant, scratch / f"{method}.ranges.json", kept)
            return Trial(method, kept, gate.score(path), path)

        methods = list(METHODS) if config.method == "auto" else [config.method]
        tried = [candidate(method, TENSORRT, []) for method in methods]
        best = max(tried, key=lambda t: t.metric)
        if best.metric < gate.required:
            ranked = rank_nodes(best.path, batches[:SENSITIVITY_FRAMES], bundle.input.name, scratch)
            best = _keep_in_float(lambda kept: candidate(best.method, TENSORRT, kept), ranked, gate.required, best)
        if best.metric < gate.required:
            raise GateFailed(_failure(bundle, gate, config, best, tried))
        lint_qdq(onnx.load(str(best.path)))
        cpu = candidate(best.method, CPU, best.kept_in_float)
        report = _report(bundle, config, calibration, gate, tried, best, cpu)
        return Quantized(_write(bundle, out, best, cpu, report), report)


def _keep_in_float(make, ranked: list[str], required: float, best: Trial) -> Trial:
    """The fewest of the most sensitive nodes kept in float that pass: doubling (1, 2, 4, …) up to
    :data:`MAX_FLOAT_SHARE` of the nodes, then bisection between the last failure and the first pass.
    Returns the first passing trial, or the best-scoring one when none passes."""
    limit = max(1, int(len(ranked) * MAX_FLOAT_SHARE))
    failed, count = 0, 1
    while True:
        trial = make(ranked[:count])
        best = trial if trial.metric > best.metric else best
        if trial.metric >= required or count == limit:
            break
        failed, count = count, min(count * 2, limit)
    if trial.metric < required:
        return best
    passed = trial
    while count - failed > 1:
        middle = (failed + count) // 2
        trial = make(ranked[:middle])
        if trial.metric >= required:
            passed, count = trial, middle
        else:
            failed = middle
    return passed


def _failure(bundle: Bundle, gate: Gate, config: QuantizeConfig, best: Trial, tried: list[Trial]) -> str:
    metric = METRICS[bundle.task]
    methods = ", ".join(f"{t.method} {t.metric:.3f}" for t in tried)
    return (f"int8 accuracy gate failed for '{bundle.name}': best {metric} vs fp32 on {len(gate.frames)} held-out "
            f"frames is {best.metric:.3f} ({best.method}, {len(best.kept_in_float)} layer(s) kept in float; up to "
            f"{MAX_FLOAT_SHARE:.0%} of the layers were tried), required >= {gate.required:.3f} "
            f"(--max-drop {config.max_drop}); methods without float layers: {methods}; no bundle written")


def _report(bundle: Bundle, config: QuantizeConfig, calibration: CalibrationSet, gate: Gate, tried: list[Trial],
            best: Trial, cpu: Trial) -> dict[str, Any]:
    progress("quantize: measuring CPU latency")
    latency = {"fp32": cpu_latency_ms(bundle.file("model"), bundle.input),
               TENSORRT.name: cpu_latency_ms(best.path, bundle.input),
               CPU.name: cpu_latency_ms(cpu.path, bundle.input)}
    cpu_runs = CPU.name if latency[CPU.name] < latency["fp32"] and cpu.metric >= gate.required else "fp32"
    return {
        "metric": METRICS[bundle.task], "max_drop": config.max_drop, "required": gate.required,
        "method": best.method, "requested_method": config.method,
        "methods": {t.method: t.metric for t in tried},
        "gate": {TENSORRT.name: best.metric, CPU.name: cpu.metric},
        "kept_in_float": best.kept_in_float,
        "calibration": {**calibration.describe(), "calibration_frame_ids": calibration.calibration_frames,
                        "holdout_frame_ids": calibration.holdout_frames},
        "latency_ms": latency, "latency": "ONNX Runtime CPU, median of single-frame runs on this machine",
        "cpu_runs": cpu_runs, "format": _variant_json(TENSORRT),
    }


def _variant_json(variant: Variant) -> dict[str, Any]:
    return {"name": variant.name, "activations": variant.activations.name, "weights": variant.weights.name,
            "symmetric": variant.symmetric_activations, "per_channel": True, "bias": "float", "qdq": True}


def _write(bundle: Bundle, out: Path, best: Trial, cpu: Trial, report: dict[str, Any]) -> Bundle:
    """The int8 bundle: the s8s8 Q/DQ model for TensorRT, the CPU's file, everything else as in the source.

    ``out`` may be the source bundle itself (``edge compile --int8``): its fp32 model then moves to the CPU's file
    or goes, and its other files stay where they are."""
    out = make_out_dir(out)
    in_place = out.resolve() == bundle.root.resolve()
    source_model = bundle.file("model")
    cpu_is_int8 = report["cpu_runs"] == CPU.name
    files = {"model": "model.int8.onnx", "model_cpu": "model.u8s8.onnx" if cpu_is_int8 else "model.fp32.onnx"}
    shutil.copyfile(best.path, out / files["model"])
    shutil.copyfile(cpu.path if cpu_is_int8 else source_model, out / files["model_cpu"])
    for role, name in bundle.files.items():
        if role not in files:
            if not in_place:
                shutil.copyfile(bundle.file(role), out / name)
            files[role] = name
    provenance = {**bundle.provenance, "quantized_from": str(bundle.root), "tool": "edge quantize"}
    written = write_bundle(out, name=bundle.name, task=bundle.task, decoder=bundle.decoder, input=bundle.input,
                           labels=bundle.labels, thresholds=bundle.thresholds, files=files, provenance=provenance,
                           decoder_args=bundle.decoder_args, precision="int8", needs=bundle.needs,
                           cpu_precision="int8" if cpu_is_int8 else "fp32",
                           extra={**bundle.extra, "quantization": report})
    if in_place and source_model.name not in files.values():
        source_model.unlink()
    return written


def format_report(report: dict[str, Any]) -> str:
    """The short table ``edge quantize`` prints."""
    metric = report["metric"]
    lines = [f"{'method':<12} {metric + ' vs fp32':>18}"]
    lines += [f"{m:<12} {v:>18.4f}" + ("   <- chosen" if m == report["method"] else "")
              for m, v in report["methods"].items()]
    kept = report["kept_in_float"]
    lines.append(f"gate (required >= {report['required']:.3f}): s8s8 {report['gate']['s8s8']:.4f}, "
                 f"u8s8 {report['gate']['u8s8']:.4f}; kept in float: {len(kept)}"
                 + (f" ({', '.join(kept)})" if kept else ""))
    cal = report["calibration"]
    lines.append(f"calibration: {cal['calibration_frames']} frames, held out: {cal['holdout_frames']} frames")
    latency = report["latency_ms"]
    lines.append("CPU latency ms: " + ", ".join(f"{k} {v:.1f}" for k, v in latency.items())
                 + f"; the CPU runs {report['cpu_runs']}")
    return "\n".join(lines)

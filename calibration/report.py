"""What ``edge quantize`` tells: the report kept in the int8 bundle, the table it prints, the one line it fails
with, and the bundle it writes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from calibration.measure import cpu_latencies_ms
from calibration.ptq import CPU, TENSORRT, Variant
from edge.bundle import Bundle, write_bundle
from edge.paths import make_out_dir
from edge.progress import say


def _trial_json(trial) -> dict[str, Any]:
    a = trial.agreement
    return {"name": trial.name, "method": trial.method, "equalized": trial.equalized, "bias_corrected": trial.corrected,
            "kept_in_float": list(trial.kept_in_float), "score": a.score, "interval": [a.low, a.high],
            "metric": a.metric, "details": a.details}


def build_report(bundle: Bundle, config, run, tried: list, best, cpu, qat, wall_s: float) -> dict[str, Any]:
    say("quantize: measuring CPU latency")
    latency = dict(zip(("fp32", TENSORRT.name, CPU.name),
                       cpu_latencies_ms([bundle.file("model"), best.path, cpu.path], bundle.input)))
    cpu_runs = CPU.name if latency[CPU.name] < latency["fp32"] and run.gate.passes(cpu.agreement) else "fp32"
    gate = run.gate.describe()
    return {
        "metric": best.agreement.metric, "max_drop": config.max_drop, "required": run.gate.required,
        "gate": gate, "method": best.method, "requested_method": config.method, "chosen": _trial_json(best),
        "ptq": [_trial_json(t) for t in tried],
        "search": run.searches,
        "qat": None if qat is None else {**_trial_json(qat), "steps": run.qat_result.steps,
                                         "losses": run.qat_result.losses},
        "kept_in_float": list(best.kept_in_float), "weighted_layers": run.weighted,
        "max_float": config.max_float, "equalized_inputs": run.rescaled,
        "cpu_gate": _trial_json(cpu),
        "calibration": {**run.calibration.describe(), "calibration_frame_ids": run.calibration.calibration_frames,
                        "holdout_frame_ids": run.calibration.holdout_frames},
        "latency_ms": latency, "latency": "ONNX Runtime CPU, median of single-frame runs on this machine",
        "cpu_runs": cpu_runs, "format": _variant_json(TENSORRT), "wall_s": wall_s,
    }


def _variant_json(variant: Variant) -> dict[str, Any]:
    return {"name": variant.name, "activations": variant.activations.name, "weights": variant.weights.name,
            "symmetric": variant.symmetric_activations, "per_channel": True, "bias": "float", "qdq": True,
            "float_weights": variant.float_weights}


def failure(bundle: Bundle, gate, best, tried: list, qat, limit: int, weighted: int) -> str:
    methods = ", ".join(f"{t.name} {t.score:.4f}" for t in tried)
    qat_part = f"; qat {qat.score:.4f}" if qat is not None else "; no --qat"
    return (f"int8 accuracy gate failed for '{bundle.name}': best {best.agreement.metric} against {gate.basis} on "
            f"{len(gate.frames)} frames is {best.score:.4f} [{best.agreement.low:.4f}, {best.agreement.high:.4f}] "
            f"({best.name}, {len(best.kept_in_float)} of {weighted} weighted layers in float, up to {limit} tried), "
            f"required >= {gate.required:.4f} (fp32's floor {gate.floor.score:.4f} - --max-drop {gate.max_drop}); "
            f"post-training: {methods}{qat_part}; no bundle written")


def format_report(report: dict[str, Any]) -> str:
    """The short table ``edge quantize`` prints."""
    gate = report["gate"]
    floor = gate["floor"]
    lines = [f"gate: {gate['metric']} against {gate['basis']}, {gate['frames']} frames; fp32 floor {floor[0]:.4f} "
             f"[{floor[1]:.4f}, {floor[2]:.4f}], required >= {report['required']:.4f}",
             f"{'candidate':<26} {'in float':>8} {'score':>8}  95 % interval"]
    rows = [*report["ptq"], *([report["qat"]] if report["qat"] else []), report["chosen"]]
    for i, row in enumerate(rows):
        mark = "   <- chosen" if i == len(rows) - 1 else ""
        lines.append(f"{row['name']:<26} {len(row['kept_in_float']):>8} {row['score']:>8.4f}  "
                     f"[{row['interval'][0]:.4f}, {row['interval'][1]:.4f}]{mark}")
    kept = report["kept_in_float"]
    lines.append(f"kept in float: {len(kept)} of {report['weighted_layers']} weighted layers"
                 + (f" ({', '.join(kept)})" if kept else ""))
    cal = report["calibration"]
    lines.append(f"calibration: {cal['calibration_frames']} frames; u8s8 (CPU) {report['cpu_gate']['score']:.4f}")
    latency = report["latency_ms"]
    lines.append("CPU latency ms: " + ", ".join(f"{k} {v:.1f}" for k, v in latency.items())
                 + f"; the CPU runs {report['cpu_runs']}; {report['wall_s']:.0f} s in all")
    return "\n".join(lines)


def write_int8_bundle(bundle: Bundle, out: Path, model: Path, cpu_model: Path, report: dict[str, Any]) -> Bundle:
    """The int8 bundle: the s8s8 Q/DQ model for TensorRT, the CPU's file, everything else as in the source.

    ``out`` may be the source bundle itself (``edge compile --int8``): its fp32 model then moves to the CPU's file
    or goes, and its other files stay where they are."""
    out = make_out_dir(out)
    in_place = out.resolve() == bundle.root.resolve()
    source_model = bundle.file("model")
    cpu_is_int8 = report["cpu_runs"] == CPU.name
    files = {"model": "model.int8.onnx", "model_cpu": "model.u8s8.onnx" if cpu_is_int8 else "model.fp32.onnx"}
    shutil.copyfile(model, out / files["model"])
    shutil.copyfile(cpu_model if cpu_is_int8 else source_model, out / files["model_cpu"])
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

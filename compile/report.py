"""What pruning and distillation bought and cost: parameters, MACs, CPU latency, agreement with the teacher.

Agreement is measured as the user will see it: the exported ONNX models run through ONNX Runtime with
edge's own preprocessing on held-out frames (never trained on), and for detection through the runtime
decoder; the metrics are the ones the INT8 accuracy gate uses (:mod:`calibration.agreement`). Latency is
measured, never asserted: the median of repeated single-frame runs of the ONNX model on this machine's CPU.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calibration import measure
from calibration.agreement import METRICS, FrameDetections
from calibration.measure import LATENCY_RUNS
from compile.families import Network
from edge.backends.onnxruntime import open_session
from edge.bundle import write_bundle
from edge.preprocess import Preprocessor


@dataclass(frozen=True)
class Measurement:
    """One model's row of the report; ``agreement`` is None when no held-out frames were given."""

    stage: str  # "original", "pruned", "distilled"
    params: int
    macs: int
    latency_ms: float
    agreement: float | None


def predictions(onnx: Path, network: Network, frames: Sequence[np.ndarray]) -> list:
    """Per-frame results as the agreement metrics take them (detections, class maps or top-1 ids)."""
    if network.task == "detection":
        return _detections(onnx, network, frames)
    session = open_session(onnx)
    preprocess = Preprocessor(network.input)
    buffer = np.empty(network.input.shape, np.float32)
    results = []
    for frame in frames:
        preprocess(frame, buffer)
        logits = session.run(None, {network.input.name: buffer})[0][0]
        results.append(logits.argmax(0) if network.task == "segmentation" else int(logits.argmax()))
    return results


def _detections(onnx: Path, network: Network, frames: Sequence[np.ndarray]) -> list[FrameDetections]:
    """Through a bundle and the runtime's decoder, exactly as the device will decode them."""
    with tempfile.TemporaryDirectory(prefix="edge-agreement-") as folder:
        root = Path(folder)
        shutil.copyfile(onnx, root / "model.onnx")
        files = {"model": "model.onnx"}
        for role, (name, contents) in network.extra_files.items():
            (root / name).write_bytes(contents)
            files[role] = name
        bundle = write_bundle(root, name="agreement", task=network.task, decoder=network.decoder,
                              input=network.input, labels=network.labels, thresholds=network.thresholds,
                              files=files, decoder_args=network.decoder_args, provenance={})
        return measure.predictions(bundle, frames)


def report_json(rows: Sequence[Measurement], task: str, holdout_frames: int) -> dict:
    return {"metric": METRICS.get(task, "agreement"), "holdout_frames": holdout_frames,
            "latency": f"ONNX Runtime CPU, median of {LATENCY_RUNS} single-frame runs",
            "rows": [asdict(row) for row in rows]}


def format_table(rows: Sequence[Measurement], task: str) -> str:
    """A short plain-text table; ratios are relative to the first row (the original model)."""
    metric = METRICS.get(task, "agreement")
    lines = [f"{'model':<10} {'params':>10} {'GMACs':>8} {'CPU ms':>8} {metric + ' vs teacher':>20}"]
    base = rows[0]
    for row in rows:
        agree = "-" if row.agreement is None else f"{row.agreement:.3f}"
        lines.append(f"{row.stage:<10} {row.params:>10,} {row.macs / 1e9:>8.3f} {row.latency_ms:>8.1f} {agree:>20}"
                     + ("" if row is base else f"   ({row.macs / base.macs:.2f}x MACs, "
                                                f"{row.latency_ms / base.latency_ms:.2f}x latency)"))
    return "\n".join(lines)

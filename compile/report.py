"""What pruning and distillation bought and cost: parameters, MACs, CPU latency, agreement with the teacher.

Agreement is measured as the user will see it: the exported ONNX models run through ONNX Runtime with
edge's own preprocessing on held-out frames (never trained on), and for detection through the runtime
decoder; the metrics are the ones the INT8 accuracy gate uses (:mod:`calibration.agreement`: for detection
class-aware and class-agnostic mAP@0.5, the candidate's boxes kept down to score 0.01 as COCO evaluation
does), with a bootstrap interval over frames. What "close enough" means is set by the teacher's own *noise
floor*: its agreement with itself on the same frames as a camera could as well have delivered them.
Latency is measured, never asserted: the median of repeated single-frame runs of each stage's ONNX model on
this machine's CPU, timed at the end, every stage taking turns (:func:`calibration.measure.cpu_latencies_ms`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from torch import nn

from calibration import measure
from calibration.agreement import METRICS, Agreement, FrameDetections, agreement, perturb
from calibration.measure import LATENCY_RUNS, candidate_bundle, cpu_latencies_ms
from compile.export import export_onnx
from compile.families import Network
from compile.prune import cost
from edge.backends.onnxruntime import open_session
from edge.bundle import write_bundle
from edge.preprocess import Preprocessor


@dataclass(frozen=True)
class Measurement:
    """One model's row of the report; ``agreement`` is None when no held-out frames were given, ``latency_ms``
    until :meth:`Judge.timed`."""

    stage: str  # "original", "pruned", "reconstructed", "distilled", "int8"
    params: int
    macs: int
    agreement: float | None
    interval: tuple[float, float] | None = None  # bootstrap 95 % over the held-out frames
    details: dict = field(default_factory=dict)  # the other metrics measured (class-aware and -agnostic mAP, …)
    latency_ms: float | None = None


class Judge:
    """Measures every stage's model alike, against the teacher's results on the held-out frames (computed once,
    with the teacher's noise floor), exporting each to ``scratch``; :meth:`timed` times them all at the end, while
    ``scratch`` still holds them."""

    def __init__(self, teacher: Network, held: Sequence[np.ndarray], scratch: Path):
        self.teacher, self.held, self.scratch = teacher, held, scratch
        onnx = self.export("original", teacher.module)
        self.reference = predictions(onnx, teacher, held) if held else []
        self.floor = noise_floor(onnx, teacher, held, self.reference) if held else None
        params, macs = cost(deepcopy(teacher.module).cpu().eval(), teacher.example())
        self.original = Measurement("original", params, macs, 1.0 if held else None)
        self.timed_models = {"original": onnx}  # stage → the file its latency is taken of

    def export(self, stage: str, module: nn.Module) -> Path:
        """``module`` (left as it was, on its device) as ONNX, the way the bundle will hold it."""
        onnx, teacher = self.scratch / f"{stage}.onnx", self.teacher
        axes = {name: {0: "n"} for name in (teacher.input.name, *teacher.output_names)} if teacher.dynamic_batch \
            else None
        export_onnx(deepcopy(module).cpu().eval(), teacher.example(), onnx, input_name=teacher.input.name,
                    output_names=teacher.output_names, dynamic_axes=axes)
        return onnx

    def measure(self, stage: str, module: nn.Module) -> tuple[Measurement, Path]:
        """The row of a student (PyTorch) and its ONNX file."""
        onnx = self.export(stage, module)
        params, macs = cost(deepcopy(module).cpu().eval(), self.teacher.example())
        self.timed_models[stage] = onnx
        return scored(Measurement(stage, params, macs, None), self.agreement(onnx)), onnx

    def measure_files(self, stage: str, like: Measurement, model: Path, cpu_model: Path) -> Measurement:
        """The row of a model that exists only as files (the int8 bundle's): ``model`` is scored, ``cpu_model``
        (what ONNX Runtime runs on the CPU) timed; parameters and MACs are those of ``like``."""
        self.timed_models[stage] = cpu_model
        return scored(replace(like, stage=stage, agreement=None, interval=None, details={}), self.agreement(model))

    def timed(self, rows: Sequence[Measurement]) -> list[Measurement]:
        """``rows`` with their CPU latency: every row's model timed in turns with the others."""
        found = cpu_latencies_ms([self.timed_models[row.stage] for row in rows], self.teacher.input)
        return [replace(row, latency_ms=ms) for row, ms in zip(rows, found)]

    def agreement(self, onnx: Path) -> Agreement | None:
        if not self.held:
            return None
        return agreement(self.teacher.task, self.reference, predictions(onnx, self.teacher, self.held, candidate=True))


def scored(row: Measurement, found: Agreement | None) -> Measurement:
    """``row`` with the agreement ``found`` (None: no held-out frames)."""
    if found is None:
        return row
    return replace(row, agreement=found.score, interval=(found.low, found.high),
                   details={"metric": found.metric, **found.details})


def noise_floor(onnx: Path, network: Network, frames: Sequence[np.ndarray], reference: list) -> Agreement:
    """The reference model against itself on the frames with a camera's noise and JPEG re-encode
    (:func:`calibration.agreement.perturb`): the best agreement a changed model can be asked for."""
    rng = np.random.default_rng(0)
    return agreement(network.task, reference, predictions(onnx, network, [perturb(f, rng) for f in frames],
                                                          candidate=True))


def predictions(onnx: Path, network: Network, frames: Sequence[np.ndarray], candidate: bool = False) -> list:
    """Per-frame results as the agreement metrics take them (detections, class maps or top-1 ids);
    ``candidate``: as a model compared with the reference is run (a detector keeps its low-score boxes)."""
    if network.task == "detection":
        return _detections(onnx, network, frames, candidate)
    session = open_session(onnx)
    preprocess = Preprocessor(network.input)
    buffer = np.empty(network.input.shape, np.float32)
    results = []
    for frame in frames:
        preprocess(frame, buffer)
        logits = session.run(None, {network.input.name: buffer})[0][0]
        results.append(logits.argmax(0) if network.task == "segmentation" else int(logits.argmax()))
    return results


def _detections(onnx: Path, network: Network, frames: Sequence[np.ndarray], candidate: bool) -> list[FrameDetections]:
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
        return measure.predictions(candidate_bundle(bundle) if candidate else bundle, frames)


def report_json(rows: Sequence[Measurement], task: str, holdout_frames: int, floor: Agreement | None) -> dict:
    return {"metric": METRICS.get(task, "agreement"), "holdout_frames": holdout_frames,
            "noise_floor": None if floor is None else {"metric": floor.metric, "score": floor.score,
                                                       "interval": [floor.low, floor.high], **floor.details},
            "latency": f"ONNX Runtime CPU, median of {LATENCY_RUNS} single-frame runs, the models taking turns",
            "rows": [asdict(row) for row in rows]}


def format_table(report: dict) -> str:
    """A short plain-text table of :func:`report_json`'s rows; ratios are relative to the first row (the original)."""
    metric, rows = report["metric"], report["rows"]
    lines = [f"{'model':<13} {'params':>10} {'GMACs':>8} {'CPU ms':>8} {metric + ' vs teacher (95 % interval)':>34}"]
    base = rows[0]
    for row in rows:
        agree = "-" if row["agreement"] is None else f"{row['agreement']:.3f}" + (
            f" [{row['interval'][0]:.3f}, {row['interval'][1]:.3f}]" if row["interval"] else "")
        lines.append(f"{row['stage']:<13} {row['params']:>10,} {row['macs'] / 1e9:>8.3f} {row['latency_ms']:>8.1f} "
                     f"{agree:>34}" + ("" if row is base else f"   ({row['macs'] / base['macs']:.2f}x MACs, "
                                                             f"{row['latency_ms'] / base['latency_ms']:.2f}x latency)"))
    floor = report["noise_floor"]
    if floor is not None:
        lines.append(f"noise floor (the teacher on camera-perturbed frames): {floor['metric']} {floor['score']:.3f} "
                     f"[{floor['interval'][0]:.3f}, {floor['interval'][1]:.3f}] on {report['holdout_frames']} "
                     f"held-out frames")
    return "\n".join(lines)

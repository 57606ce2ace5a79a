"""The INT8 accuracy gate: a candidate passes when it agrees with fp32 as well as fp32 agrees with itself, less
the allowed drop.

Without labels, fp32's own results on the held-out frames are the ground truth, and a perfect score of 1.0 is not
the bar: fp32 itself, fed the same frames as a camera could as well have delivered them (sensor noise, a JPEG
re-encode: :func:`calibration.measure.noise_floor`), scores below 1 (YOLOX-nano on the highway: about 0.99
class-agnostic mAP@0.5). That score is the *floor*; a candidate passes when its score against fp32 on the clean
frames is at least ``floor - max_drop``. Each score has a bootstrap 95 % interval over frames, which the report
prints, so the reader sees how much of a difference is noise.

With labels (``--val``, :mod:`calibration.labels`) the gate scores fp32 and the candidate against the labels on
the labelled images instead, and a candidate passes when its real mAP / mIoU is at least fp32's less the drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calibration.agreement import Agreement, agreement
from calibration.labels import Labels
from calibration.measure import candidate_bundle, noise_floor, predictions
from edge.bundle import Bundle
from edge.progress import say


class Gate:
    """Scores candidate ONNX files of ``bundle`` on ``frames`` (held-out footage), or against ``labels``."""

    def __init__(self, bundle: Bundle, frames: Sequence[np.ndarray], max_drop: float, labels: Labels | None = None):
        self.bundle, self.labels, self.max_drop = bundle, labels, max_drop
        self.candidate = candidate_bundle(bundle)
        if labels is None:
            self.frames = list(frames)
            say(f"gate: fp32 on {len(self.frames)} held-out frames, clean and perturbed (the noise floor)")
            self.reference = predictions(bundle, self.frames)
            self.floor = noise_floor(bundle, self.frames, self.reference)
        else:
            self.frames = labels.frames
            say(f"gate: fp32 against the labels of {len(self.frames)} images")
            self.floor = labels.score(predictions(self.candidate, self.frames))
        self.required = self.floor.score - max_drop

    @property
    def basis(self) -> str:
        """What the scores are measured against, for reports."""
        return f"labels ({self.labels.source})" if self.labels else "fp32 on held-out frames"

    def score(self, model: Path, *, on_cpu: bool = False) -> Agreement:
        """The candidate's agreement with fp32 (or with the labels) on the gate's frames: computed as TensorRT
        computes its Q/DQ pairs, or with ``on_cpu`` through ONNX Runtime's own int8 kernels (the CPU variant)."""
        found = predictions(self.candidate, self.frames, model, as_tensorrt=not on_cpu)
        return self.labels.score(found) if self.labels else agreement(self.bundle.task, self.reference, found)

    def passes(self, result: Agreement) -> bool:
        return result.score >= self.required

    def describe(self) -> dict:
        return {"basis": self.basis, "frames": len(self.frames), "metric": self.floor.metric,
                "floor": [self.floor.score, self.floor.low, self.floor.high], "max_drop": self.max_drop,
                "required": self.required, "floor_details": self.floor.details}

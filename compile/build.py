"""``edge compile``: a torchvision detection model (random weights or a checkpoint) → ONNX → bundle.

Everything the device needs to reproduce torchvision's own pre- and post-processing is written into
the bundle (input spec, anchors, decoder arguments, thresholds), so the runtime never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision

from compile import torchvision_detection as tvd
from compile.export import EXPORTER, OPSET, export_onnx
from edge.bundle import Bundle, Thresholds, provenance, sha256_file, write_bundle
from edge.bundle_create import read_labels
from edge.errors import BadInputError, UsageError

# Model name → the task it does.
SUPPORTED = {name: "detection" for name in tvd.SSD_MODELS}
# The bundle's score threshold, as `edge bundle create` defaults: torchvision's own (0.001 or 0.01) is for
# measuring mAP, and would fill every frame with hundreds of boxes.
SCORE_THRESHOLD = 0.3


def compile_model(model: str, out: str | Path, *, task: str, checkpoint: str | Path | None = None,
                  labels: str | Path | None = None, name: str | None = None) -> Bundle:
    """Builds ``model`` (with ``checkpoint``'s weights, else seeded random ones) and writes its bundle to ``out``."""
    _check_supported(model, task)
    net = tvd.ssd_model(model, checkpoint)
    label_names = _labels(model, tvd.num_classes(net), labels)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {out} ({e.strerror})") from None

    spec = tvd.input_spec(net)
    export_onnx(tvd.SsdHeads(net), torch.zeros(spec.shape), out / "model.onnx", input_name=spec.name,
                output_names=tvd.OUTPUT_NAMES)
    np.save(out / "anchors.npy", tvd.ssd_anchors(net))
    return write_bundle(
        out, name=name or model, task=task, decoder="ssd", input=spec, labels=label_names,
        thresholds=Thresholds(score=SCORE_THRESHOLD, iou=net.nms_thresh, max_detections=net.detections_per_img),
        files={"model": "model.onnx", "anchors": "anchors.npy"},
        decoder_args=tvd.decoder_args(net),
        provenance=_provenance(model, checkpoint),
        extra={"compile": {"model": model, "opset": OPSET, "exporter": EXPORTER}},
    )


def _check_supported(model: str, task: str) -> None:
    supported = ", ".join(f"{m} ({t})" for m, t in SUPPORTED.items())
    if model not in SUPPORTED:
        raise UsageError(f"--model: unknown model '{model}'; supported: {supported}")
    if SUPPORTED[model] != task:
        raise UsageError(f"--task: {model} is a {SUPPORTED[model]} model, not {task}; supported: {supported}")


def _labels(model: str, classes: int, labels: str | Path | None) -> list[str]:
    """The ``--labels`` file, else the COCO names for a 91-class model, else ``class_N``."""
    if labels is not None:
        names = read_labels(labels)
        if len(names) != classes:
            raise BadInputError(f"{labels}: {len(names)} labels, but the model has {classes} classes "
                                f"(class 0 is the background)")
        return names
    if classes == tvd.COCO_CLASSES:
        return tvd.coco_labels(model)
    return [f"class_{i}" for i in range(classes)]


def _provenance(model: str, checkpoint: str | Path | None) -> dict:
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    if checkpoint is None:
        return provenance(f"torchvision.models.detection.{model}", "edge compile", weights="random", **versions)
    path = Path(checkpoint).resolve()
    return provenance(str(path), "edge compile", weights="checkpoint", checkpoint=str(path),
                      checkpoint_sha256=sha256_file(path), **versions)

"""``edge compile``: a PyTorch model (random weights or a checkpoint) → ONNX → bundle.

One table maps every model name to the task it does and the function that builds its bundle. Each
family writes everything the device needs to reproduce the model's own pre- and post-processing into
the bundle (input spec, anchors, decoder arguments, thresholds), so the runtime never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compile import mtcnn, unet
from compile import torchvision_classification as tvc
from compile import torchvision_detection as tvd
from compile import torchvision_rcnn as rcnn
from compile import torchvision_segmentation as tvs
from compile.export import Checkpoint
from edge.bundle import Bundle
from edge.errors import UsageError
from edge.paths import make_out_dir

Builder = Callable[..., Bundle]  # (model, out, *, checkpoint, labels, name, size) → bundle

MODELS: dict[str, tuple[str, Builder]] = {
    **{model: ("detection", tvd.compile_ssd) for model in tvd.SSD_MODELS},
    **{model: ("classification", tvc.compile_classifier) for model in tvc.CLASSIFIERS},
    **{model: ("segmentation", tvs.compile_segmenter) for model in tvs.SEGMENTERS},
    **{model: (kind.task, rcnn.compile_rcnn) for model, kind in rcnn.KINDS.items()},
    **{model: ("segmentation", unet.compile_unet) for model in unet.MODELS},
    "mtcnn": ("detection", mtcnn.compile_mtcnn),
}


def compile_model(model: str, out: str | Path, *, task: str, checkpoint: Checkpoint = None,
                  labels: str | Path | None = None, name: str | None = None,
                  input_size: tuple[int, int] | None = None) -> Bundle:
    """Builds ``model`` (with ``checkpoint``'s weights, else seeded random ones) and writes its bundle to ``out``.

    ``checkpoint`` is one file, or for a model of several networks (MTCNN) a mapping network → file.
    ``input_size`` (width, height) overrides the family's default input size where the model allows it.
    """
    _check_supported(model, task)
    builder = MODELS[model][1]
    return builder(model, make_out_dir(out), checkpoint=checkpoint, labels=labels, name=name, size=input_size)


def _check_supported(model: str, task: str) -> None:
    supported = ", ".join(f"{m} ({t})" for m, (t, _) in MODELS.items())
    if model not in MODELS:
        raise UsageError(f"--model: unknown model '{model}'; supported: {supported}")
    if MODELS[model][0] != task:
        raise UsageError(f"--task: {model} is a {MODELS[model][0]} model, not {task}; supported: {supported}")

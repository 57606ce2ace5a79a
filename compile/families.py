"""The model families compile can prune and distil, each as a :class:`Network`: one module from the
normalised input tensor to the raw outputs the runtime decodes, plus everything a bundle needs around it.

torchvision's detection, segmentation and classification models are built here offline (``weights=None``);
MTCNN's R-Net and O-Net (``mtcnn_rnet``, ``mtcnn_onet``) are face / not-face classifiers of crops with box
and landmark regression (:func:`mtcnn_stage_network`); any bundle whose ONNX model onnx2torch can convert
(YOLOX-nano, …) becomes a Network too, with the bundle's own input spec, decoder and labels.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights, list_models

from compile import mtcnn, unet
from compile import torchvision_detection as tvd
from compile import torchvision_rcnn as rcnn
from compile.checkpoint import load_weights, read_state_dict
from compile.onnx_to_torch import convert_onnx
from compile.prune import Trace
from compile.torchvision_segmentation import SegmentationLogits
from edge.bundle import Bundle, InputSpec, Thresholds, load_bundle, provenance, sha256_file
from edge.bundle.create import create_bundle
from edge.errors import UsageError

SEGMENTATION_MODELS = tuple(list_models(module=torchvision.models.segmentation))
CLASSIFICATION_MODELS = tuple(list_models(module=torchvision.models))
# ImageNet normalisation in 0..255 pixel units, as every torchvision classification and segmentation model uses.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
MTCNN_STAGES = tuple(f"mtcnn_{role}" for role in ("rnet", "onet"))
# Which distillation loss reads the outputs (compile.losses.task_loss); None: no loss fits them (an R-CNN's
# outputs are post-processed detections, of run-time count), so the network can be pruned but not distilled.
HEADS = ("ssd", "yolox", "logits", "sigmoid", "mtcnn", None)


@dataclass
class Network:
    """A model as compile prunes, distils and exports it."""

    module: nn.Module  # normalised input tensor → raw outputs (a tensor or a tuple of tensors)
    task: str
    decoder: str  # the runtime decoder of its bundle
    head: str | None  # one of HEADS
    input: InputSpec
    output_names: tuple[str, ...]
    labels: list[str]
    source: dict[str, Any]  # the bundle's provenance
    thresholds: Thresholds = field(default_factory=Thresholds)
    decoder_args: dict[str, Any] = field(default_factory=dict)
    extra_files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # role → (file name, contents)
    backbone: tuple[str, ...] = ()  # module-name prefixes that --freeze-backbone-epochs freezes; () = all but heads
    feature_layer: str | None = None  # module whose outputs feature distillation matches
    keep: tuple[str, ...] = ()  # modules whose output width must stay, beyond the automatic rule
    trace: Trace = None  # the forward pruning traces, where the plain one hides layers (compile.prune)
    dynamic_batch: bool = False  # exported with a dynamic batch axis (crops: the runtime batches them)

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros((batch, *self.input.shape[1:]))


class FaceProbFirst(nn.Module):
    """An MTCNN stage with its face probability as the first output, where the classification decoder and
    the report read the class scores; the regressions follow under their cascade names."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *regressions, face_prob = self.network(crops)
        return (face_prob, *regressions)


def ssd_network(name: str, checkpoint: str | Path | None = None) -> Network:
    model = tvd.ssd_model(name, checkpoint)
    anchors = io.BytesIO()
    np.save(anchors, tvd.ssd_anchors(model))
    return Network(
        module=tvd.SsdHeads(model), task="detection", decoder="ssd", head="ssd", input=tvd.input_spec(model),
        output_names=tvd.OUTPUT_NAMES, labels=tvd.coco_labels(name) if tvd.num_classes(model) == tvd.COCO_CLASSES
        else [f"class_{i}" for i in range(tvd.num_classes(model))],
        source=_source(f"torchvision.models.detection.{name}", checkpoint),
        thresholds=Thresholds(score=tvd.SCORE_THRESHOLD, iou=model.nms_thresh, max_detections=model.detections_per_img),
        decoder_args=tvd.decoder_args(model), extra_files={"anchors": ("anchors.npy", anchors.getvalue())},
        backbone=("backbone",), feature_layer="backbone",
    )


def segmentation_network(name: str, checkpoint: str | Path | None = None,
                         input_size: tuple[int, int] = (520, 520)) -> Network:
    """FCN, DeepLabV3 or LRASPP without the auxiliary head (the device runs ``out`` only)."""
    torch.manual_seed(0)
    model = get_model(name, weights=None, weights_backbone=None, aux_loss=False).eval()
    _load(model, name, checkpoint)
    return _imagenet_network(SegmentationLogits(model), name, checkpoint, input_size, task="segmentation",
                             decoder="softmax", backbone=("model.backbone",), feature_layer="model.backbone")


def classifier_network(name: str, checkpoint: str | Path | None = None,
                       input_size: tuple[int, int] = (224, 224)) -> Network:
    """A torchvision classifier; its ``fc``/``classifier`` keeps its width through the automatic rule."""
    torch.manual_seed(0)
    options = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    model = get_model(name, weights=None, **options).eval()
    _load(model, name, checkpoint)
    return _imagenet_network(model, name, checkpoint, input_size, task="classification", decoder="softmax-topk")


def rcnn_network(name: str, checkpoint: str | Path | None = None,
                 input_size: tuple[int, int] | None = None) -> Network:
    """Faster, Mask or Keypoint R-CNN with its post-processing, as ``edge compile`` exports it; prunable
    (traced with the RPN, :func:`compile.torchvision_rcnn.trace_with_rpn`), not distillable."""
    width, height = rcnn.input_size(name, input_size)
    net, kind = rcnn.rcnn_model(name, checkpoint, (width, height)), rcnn.KINDS[name]
    return Network(module=rcnn.RcnnHeads(net, kind.outputs), task=kind.task, decoder=kind.decoder, head=None,
                   input=rcnn.input_spec(width, height), output_names=kind.outputs,
                   labels=rcnn.labels_of(name, net), source=_source(f"torchvision.models.detection.{name}", checkpoint),
                   thresholds=rcnn.thresholds(net), backbone=("model.backbone",), trace=rcnn.trace_with_rpn)


def mtcnn_stage_network(name: str, checkpoint: str | Path | None = None) -> Network:
    """R-Net or O-Net alone, as a classifier of square face-candidate crops (labels "not face", "face";
    the face probability is already a softmax). Distil it on crops like those the cascade shows it
    (:func:`compile.mtcnn.candidate_crops`): on whole frames it would hardly ever see a face."""
    role = name.removeprefix("mtcnn_")
    _, side, outputs = mtcnn.NETWORKS[role]
    spec = InputSpec(name="image", shape=(1, 3, side, side), layout="nchw", color="rgb", dtype="float32",
                     resize="stretch", pad_value=0.0, mean=mtcnn.MEAN, std=mtcnn.STD)
    return Network(module=FaceProbFirst(mtcnn.load_network(role, checkpoint)), task="classification",
                   decoder="softmax-topk", head="mtcnn", input=spec,
                   output_names=(outputs[-1], *outputs[:-1]), labels=["not face", "face"],
                   source=_source(f"MTCNN {role} (compile/mtcnn.py)", checkpoint),
                   decoder_args={"softmax": False, "topk": 2}, dynamic_batch=True)


def unet_network(name: str, checkpoint: str | Path | None = None, labels: str | Path | None = None,
                 input_size: tuple[int, int] | None = None) -> Network:
    """A U-Net of segmentation_models_pytorch (:mod:`compile.unet`): one class → sigmoid mask, more → logits."""
    parts = unet.network_parts(name, checkpoint, labels, input_size)
    encoder = "model.encoder" if isinstance(parts.module, unet.Probabilities) else "encoder"
    return Network(module=parts.module, task="segmentation", decoder=parts.decoder,
                   head="sigmoid" if parts.decoder == "sigmoid" else "logits", input=parts.input,
                   output_names=(parts.output,), labels=parts.labels,
                   source=_source(f"segmentation_models_pytorch {name}", unet.weights_file(checkpoint)),
                   thresholds=unet.THRESHOLDS, decoder_args=parts.decoder_args, backbone=(encoder,),
                   feature_layer=encoder)


def bundle_network(bundle: Bundle) -> Network:
    """The bundle's ONNX model converted to PyTorch, with the bundle's own spec, decoder and labels."""
    module = convert_onnx(bundle.file("model"))
    head = bundle.decoder if bundle.decoder in ("ssd", "yolox") else "logits"
    extra = {role: (Path(path).name, (bundle.root / path).read_bytes())
             for role, path in bundle.files.items() if role != "model"}
    return Network(
        module=module, task=bundle.task, decoder=bundle.decoder, head=head, input=bundle.input,
        output_names=_onnx_output_names(bundle.file("model")), labels=list(bundle.labels),
        source=provenance(str(bundle.root.resolve()), "edge compile", weights="bundle",
                          bundle_provenance=bundle.provenance),
        thresholds=bundle.thresholds, decoder_args=dict(bundle.decoder_args), extra_files=extra,
    )


def torchvision_network(name: str, task: str, checkpoint: str | Path | None = None,
                        input_size: tuple[int, int] | None = None, labels: str | Path | None = None) -> Network:
    """The torchvision model (or MTCNN stage, or U-Net) ``name`` for ``task``; a usage error lists what each task
    supports. ``labels``: a U-Net's class names (their count sets its classes without a checkpoint)."""
    families = {"detection": (*tvd.SSD_MODELS, *rcnn.FASTER_RCNN),
                "segmentation": (*SEGMENTATION_MODELS, *rcnn.MASK_RCNN, *unet.MODELS),
                "pose": tuple(rcnn.KEYPOINT_RCNN),
                "classification": CLASSIFICATION_MODELS + MTCNN_STAGES}
    if name not in families.get(task, ()):
        raise UsageError(f"--model: '{name}' is not a {task} model compile can prune; detection: "
                         f"{', '.join(families['detection'])}; segmentation: {', '.join(families['segmentation'])}; "
                         f"pose: {', '.join(families['pose'])}; "
                         f"classification: any torchvision classifier, {', '.join(MTCNN_STAGES)}")
    if name in rcnn.KINDS:
        return rcnn_network(name, checkpoint, input_size)
    if name in unet.MODELS:
        return unet_network(name, checkpoint, labels, input_size)
    if task == "detection":
        return ssd_network(name, checkpoint)
    if name in MTCNN_STAGES:
        return mtcnn_stage_network(name, checkpoint)
    builder = segmentation_network if task == "segmentation" else classifier_network
    return builder(name, checkpoint, **({"input_size": input_size} if input_size else {}))


def network_builder(model: str, task: str, *, scratch: Path, checkpoint: str | Path | None = None,
                    input_size: tuple[int, int] | None = None, decoder: str | None = None,
                    labels: str | Path | None = None, **input_options: Any) -> Callable[[], Network]:
    """What ``--model`` names, as a function that builds a fresh copy (teacher, student, replays).

    ``model`` is a torchvision name, a bundle folder, or an ONNX file; an ONNX file says nothing of how
    it is fed or decoded, so it is first wrapped into a bundle in ``scratch`` with ``decoder``, ``labels``
    and the input options, exactly as ``edge bundle create`` would.
    """
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        if decoder is None:
            raise UsageError("--decoder: an ONNX --model needs the decoder that reads its outputs, e.g. yolox")
        bundle = create_bundle(path, scratch / "original", task=task, decoder=decoder, labels=labels,
                               input_size=input_size, **input_options)
    elif path.is_dir():
        bundle = load_bundle(path)
    else:
        return lambda: torchvision_network(model, task, checkpoint, input_size, labels)
    if bundle.task != task:
        raise UsageError(f"--task: {model} is a {bundle.task} model, not {task}")
    return lambda: bundle_network(bundle)


def _imagenet_network(module: nn.Module, name: str, checkpoint: str | Path | None, input_size: tuple[int, int],
                      **fields: Any) -> Network:
    width, height = input_size
    spec = InputSpec(name="images", shape=(1, 3, height, width), layout="nchw", color="rgb", dtype="float32",
                     resize="stretch", pad_value=0.0, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    categories = get_model_weights(name).DEFAULT.meta["categories"]  # offline metadata, nothing is downloaded
    return Network(module=module, head="logits", input=spec, output_names=("logits",), labels=list(categories),
                   source=_source(f"torchvision.models.{name}", checkpoint), **fields)


def _load(model: nn.Module, name: str, checkpoint: str | Path | None) -> None:
    if checkpoint is not None:
        load_weights(model, read_state_dict(checkpoint), checkpoint, name)


def _source(source: str, checkpoint: str | Path | None) -> dict[str, Any]:
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__}
    if checkpoint is None:
        return provenance(source, "edge compile", weights="random", **versions)
    path = Path(checkpoint).resolve()
    return provenance(str(path), "edge compile", weights="checkpoint", checkpoint=str(path),
                      checkpoint_sha256=sha256_file(path), **versions)


def _onnx_output_names(path: Path) -> tuple[str, ...]:
    import onnx

    return tuple(output.name for output in onnx.load(str(path), load_external_data=False).graph.output)

"""MTCNN's three networks (Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks", 2016), written from the paper's architecture so that the widely used PyTorch
weights (facenet-pytorch's ``pnet.pt``, ``rnet.pt``, ``onet.pt``) load with strict key matching.

Layer names follow those weights: ``conv*``, ``prelu*`` (per-channel PReLU), ``dense*``; max pooling
rounds up (Caffe's pooling, which the original models were trained with). The published dense weights of
R-Net and O-Net read the last feature map flattened in (width, height, channel) order (they were converted
from Caffe/MATLAB, which store images column-major); here the networks flatten channel-major, as PyTorch
does, and those columns are reordered once when a checkpoint is loaded (:func:`from_caffe_order`). The
outputs are the same, and Torch-Pruning can prune the last convolution: its dependency graph maps a pruned
channel to the dense columns of a channel-major flatten, and through the transposed one it would cut the
wrong columns.
All three export to one bundle (files ``pnet``, ``rnet``, ``onet``) run by edge's ``mtcnn`` cascade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compile.checkpoint import load_weights, read_state_dict
from compile.export import Checkpoint, export_onnx, resolve_labels, write_compiled
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.errors import UsageError
from edge.runner import Runner

MEAN, STD = (127.5,) * 3, (128.0,) * 3  # (x - 127.5) × 0.0078125, as the networks were trained
INPUT_SIZE = (640, 640)  # the working size cap: larger frames are searched at a reduced scale
ROLES = ("pnet", "rnet", "onet")


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12 × 12 window per output cell (stride 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box regression

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement network on 24 × 24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(self.prelu3(self.conv3(x)).flatten(1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network on 48 × 48 crops: face probability, box regression and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # 5 x then 5 y, relative to the crop box

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(self.prelu4(self.conv4(x)).flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


NETWORKS = {"pnet": (PNet, 12, ("bbox_reg", "face_prob")), "rnet": (RNet, 24, ("bbox_reg", "face_prob")),
            "onet": (ONet, 48, ("bbox_reg", "landmarks", "face_prob"))}
FEATURE_SIDE = 3  # R-Net's and O-Net's last feature map is 3 × 3
DENSE = {"rnet": "dense4.weight", "onet": "dense5.weight"}  # the dense layer that reads it


def from_caffe_order(role: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A published (Caffe-order) state_dict with the first dense layer's columns in channel-major order.
    A weight of an unexpected shape is left as it is, for :func:`load_weights` to report."""
    weight = state_dict.get(DENSE.get(role, ""))
    if weight is None or weight.ndim != 2 or weight.shape[1] % FEATURE_SIDE ** 2:
        return state_dict
    rows, side = weight.shape[0], FEATURE_SIDE
    columns = weight.view(rows, side, side, -1).permute(0, 3, 2, 1).reshape(rows, -1)  # (w, h, c) → (c, h, w)
    return {**state_dict, DENSE[role]: columns.contiguous()}


def load_network(role: str, checkpoint: str | Path | None) -> nn.Module:
    """One network with a published checkpoint's weights (strict key match), or seeded random ones."""
    torch.manual_seed(0)
    network = NETWORKS[role][0]().eval()
    if checkpoint is not None:
        load_weights(network, from_caffe_order(role, read_state_dict(checkpoint)), checkpoint, f"MTCNN {role}")
    return network


def mtcnn_networks(checkpoints: dict[str, str | Path] | None = None) -> dict[str, nn.Module]:
    """The three networks, with the checkpoints' weights (strict key match) or seeded random ones."""
    return {role: load_network(role, (checkpoints or {}).get(role)) for role in NETWORKS}


def compile_mtcnn(model: str, out: Path, *, checkpoint: Checkpoint, labels: str | Path | None, name: str | None,
                  size: tuple[int, int] | None) -> Bundle:
    if checkpoint is not None and (not isinstance(checkpoint, dict) or set(checkpoint) != set(ROLES)):
        raise UsageError("--checkpoint: MTCNN takes one checkpoint per network: "
                         "--checkpoint pnet=FILE --checkpoint rnet=FILE --checkpoint onet=FILE")
    networks = mtcnn_networks(checkpoint)
    for role, (_, side, outputs) in NETWORKS.items():
        # Batches of crops; P-Net also runs at every pyramid size.
        axes = {0: "n", 2: "h", 3: "w"} if role == "pnet" else {0: "n"}
        out_axes = {0: "n", 2: "oh", 3: "ow"} if role == "pnet" else {0: "n"}
        export_onnx(networks[role], torch.zeros(1, 3, side, side), out / f"{role}.onnx", input_name="image",
                    output_names=outputs, dynamic_axes={"image": axes, **{o: out_axes for o in outputs}})
    width, height = size or INPUT_SIZE
    spec = InputSpec(name="image", shape=(1, 3, height, width), layout="nchw", color="rgb", dtype="float32",
                     resize="stretch", pad_value=0.0, mean=MEAN, std=STD)
    return write_compiled(
        out, model, checkpoint, name=name or model, task="detection", decoder="mtcnn", input=spec,
        labels=resolve_labels(labels, 1, ["face"]), thresholds=Thresholds(score=0.7, iou=0.7),
        files={role: f"{role}.onnx" for role in ROLES},
        decoder_args={"min_face": 20, "factor": 0.709, "stage_thresholds": [0.6, 0.7]},
    )


def candidate_crops(bundle: Bundle, frames: Iterable[np.ndarray], margin: float = 0.2) -> list[np.ndarray]:
    """What O-Net is shown in the cascade, cut out of ``frames`` (BGR): squares around every candidate R-Net
    passes — faces and near-misses alike, the cascade's last threshold set to zero — widened by ``margin``
    of their side so that augmentation's random crops can shift and rescale the face. Distilling O-Net on a
    user's footage means distilling on these; whole frames or random windows hardly ever hold a face."""
    model = Runner(replace(bundle, thresholds=replace(bundle.thresholds, score=0.0)), "onnxruntime")
    crops = []
    try:
        for frame in frames:
            height, width = frame.shape[:2]
            boxes = model(frame).boxes
            centres, sides = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).max(1) * (1 + margin)
            corners = np.concatenate([centres - sides[:, None] / 2, centres + sides[:, None] / 2], axis=1)
            corners = np.clip(np.round(corners), 0, [width, height, width, height]).astype(int)
            crops.extend(frame[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in corners if x1 - x0 >= 12 and y1 - y0 >= 12)
    finally:
        model.close()
    return crops

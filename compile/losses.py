"""Distillation losses: how far the student's raw outputs are from the teacher's on the same batch.

No labels are involved: the teacher's outputs are the targets. Every loss takes the two models' output
tuples and ``hard``: with ``hard=True`` the teacher's decisions are sharpened to one-hot/0-1 targets.
That is what Taylor importance back-propagates before pruning: at the teacher's own weights the soft loss
sits at its minimum, where every gradient is zero and would rank all channels alike.

Class scores are compared as KL divergence at temperature ``T`` (scaled by T², Hinton et al.), so the
gradient keeps its size as T changes; softmax heads use the categorical KL, sigmoid heads (YOLOX) a
binary KL per class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge.decoders.yolox import grid_for

Outputs = Sequence[torch.Tensor]
_EPS = 1e-6


def softmax_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float, hard: bool, dim: int) -> torch.Tensor:
    """Categorical KL(teacher ‖ student) at ``temperature`` along ``dim``, one value per position."""
    log_student = F.log_softmax(student / temperature, dim=dim)
    if hard:
        target = F.one_hot(teacher.argmax(dim), teacher.shape[dim]).movedim(-1, dim).to(student.dtype)
        return -(target * log_student).sum(dim)
    log_teacher = F.log_softmax(teacher / temperature, dim=dim)
    return (log_teacher.exp() * (log_teacher - log_student)).sum(dim) * temperature ** 2


def sigmoid_kl(student_prob: torch.Tensor, teacher_prob: torch.Tensor, temperature: float,
               hard: bool) -> torch.Tensor:
    """Binary KL per element between probabilities, softened at ``temperature`` through their logits."""
    student_logit = torch.logit(student_prob.clamp(_EPS, 1 - _EPS)) / temperature
    if hard:
        return F.binary_cross_entropy_with_logits(student_logit, (teacher_prob > 0.5).to(student_prob.dtype),
                                                  reduction="none")
    target = torch.sigmoid(torch.logit(teacher_prob.clamp(_EPS, 1 - _EPS)) / temperature)
    cross = F.binary_cross_entropy_with_logits(student_logit, target, reduction="none")
    entropy = F.binary_cross_entropy(target, target, reduction="none")
    return (cross - entropy) * temperature ** 2


class LogitLoss(nn.Module):
    """Classification ``[B, C]`` and segmentation ``[B, C, H, W]``: KL per image or per pixel, averaged."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, student: Outputs, teacher: Outputs, hard: bool = False) -> torch.Tensor:
        return softmax_kl(student[0], teacher[0], self.temperature, hard, dim=1).mean()


class SigmoidMapLoss(nn.Module):
    """Independent classes per pixel ``[B, C, H, W]`` given as probabilities (a one-class U-Net's mask): binary
    KL at T per class and pixel, averaged."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, student: Outputs, teacher: Outputs, hard: bool = False) -> torch.Tensor:
        return sigmoid_kl(student[0], teacher[0], self.temperature, hard).mean()


class SsdLoss(nn.Module):
    """SSD heads ``(bbox_regression [B, N, 4], cls_logits [B, N, C])``, class 0 the background.

    Classes: KL per anchor at T, summed over all anchors (background anchors teach the student where
    *not* to fire) and divided by the teacher's foreground count (its summed foreground probability),
    as SSD's own loss divides by the number of matched anchors.

    Boxes: both models share the anchors and the box coder, so an anchor's decoded box is the same fixed,
    monotone function of its raw deltas for both; regressing the student's raw deltas to the teacher's
    (smooth L1) regresses its decoded boxes to the teacher's in the anchor-normalised units SSD was
    trained in, without decoding thousands of boxes per image. Each anchor weighs by the teacher's
    foreground confidence (1 − p_background), so the anchors whose boxes the decoder will output
    dominate, and background anchors' arbitrary deltas do not.
    """

    def __init__(self, temperature: float, box_weight: float = 1.0):
        super().__init__()
        self.temperature, self.box_weight = temperature, box_weight

    def forward(self, student: Outputs, teacher: Outputs, hard: bool = False) -> torch.Tensor:
        (s_boxes, s_logits), (t_boxes, t_logits) = student, teacher
        foreground = 1 - torch.softmax(t_logits, dim=-1)[..., 0]
        objects = foreground.sum().clamp(min=1.0)
        classes = softmax_kl(s_logits, t_logits, self.temperature, hard, dim=-1).sum() / objects
        boxes = F.smooth_l1_loss(s_boxes, t_boxes, reduction="none").sum(-1)
        return classes + self.box_weight * (foreground * boxes).sum() / foreground.sum().clamp(min=_EPS)


class YoloxLoss(nn.Module):
    """YOLOX's ``[B, N, 5 + C]``: raw (cx, cy, w, h), objectness and class probabilities (sigmoids).

    Objectness: binary KL at T on every point. Classes: binary KL at T weighted by the teacher's
    objectness, because YOLOX only trains class scores where there is an object. Both are summed and
    divided by the teacher's object count (its summed objectness), as YOLOX's own loss divides by its
    foreground count: a mean over thousands of empty points would drown the few that hold objects.
    Boxes: both models' raw outputs are decoded on the grid (``xy = (raw + cell) * stride``,
    ``wh = exp(raw) * stride``) and compared as L1 in units of the point's stride, weighted by the
    teacher's score (objectness × best class).
    """

    def __init__(self, temperature: float, width: int, height: int, points: int, box_weight: float = 1.0):
        super().__init__()
        self.temperature, self.box_weight = temperature, box_weight
        cells, strides = grid_for(width, height, points)
        self.register_buffer("cells", torch.from_numpy(cells), persistent=False)
        self.register_buffer("strides", torch.from_numpy(strides), persistent=False)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Boxes (cx, cy, w, h) in units of each point's stride."""
        return torch.cat([raw[..., :2] + self.cells, torch.exp(raw[..., 2:4].clamp(max=10.0))], dim=-1)

    def forward(self, student: Outputs, teacher: Outputs, hard: bool = False) -> torch.Tensor:
        s, t = student[0], teacher[0]
        weight = t[..., 4]
        objects = weight.sum().clamp(min=1.0)
        objectness = sigmoid_kl(s[..., 4], weight, self.temperature, hard).sum() / objects
        classes = (weight[..., None] * sigmoid_kl(s[..., 5:], t[..., 5:], self.temperature, hard)).sum() / objects
        score = weight * t[..., 5:].amax(-1)
        boxes = (score[..., None] * (self.decode(s) - self.decode(t)).abs()).sum() / score.sum().clamp(min=_EPS)
        return objectness + classes + self.box_weight * boxes


class FaceLoss(nn.Module):
    """MTCNN's R-Net and O-Net: ``(face_prob, bbox_reg[, landmarks])``, the probability already a softmax.

    Face / not face: categorical KL at T on the log-probabilities (the logits up to a constant, which
    softmax ignores). Box regression and landmarks: smooth L1 toward the teacher's, weighted by the
    teacher's face probability, as MTCNN trains them on face crops only; divided by the batch's face count
    (at least one), so a batch of non-faces does not inflate its few regressions.
    """

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, student: Outputs, teacher: Outputs, hard: bool = False) -> torch.Tensor:
        (s_prob, *s_regressions), (t_prob, *t_regressions) = student, teacher
        log_s, log_t = (torch.log(p.clamp(min=_EPS)) for p in (s_prob, t_prob))
        classes = softmax_kl(log_s, log_t, self.temperature, hard, dim=1).mean()
        face = t_prob[:, 1]
        regression = sum(F.smooth_l1_loss(s, t, reduction="none").sum(1) for s, t in zip(s_regressions, t_regressions))
        return classes + (face * regression).sum() / face.sum().clamp(min=1.0)


class FeatureLoss(nn.Module):
    """Feature distillation on backbone outputs: MSE after a 1x1 adapter (student width → teacher width),
    relative to the teacher's mean square so that maps of any scale weigh alike. The adapters exist only
    during training; they are made on the first batch, when the widths are known."""

    def __init__(self):
        super().__init__()
        self.adapters = nn.ModuleList()

    def forward(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        if not self.adapters:
            self.adapters.extend(nn.Conv2d(s.shape[1], t.shape[1], 1).to(s.device) for s, t in zip(student, teacher))
        total = student[0].new_zeros(())
        for adapter, s, t in zip(self.adapters, student, teacher):
            total = total + F.mse_loss(adapter(s), t) / (t.pow(2).mean() + _EPS)
        return total / len(self.adapters)


def task_loss(head: str, temperature: float, output_shapes: Sequence[Sequence[int]],
              input_size: tuple[int, int]) -> nn.Module:
    """The loss for a model whose outputs are of the kind ``head`` (:data:`compile.families.HEADS`)."""
    if head == "ssd":
        return SsdLoss(temperature)
    if head == "mtcnn":
        return FaceLoss(temperature)
    if head == "sigmoid":
        return SigmoidMapLoss(temperature)
    if head == "yolox":
        width, height = input_size
        return YoloxLoss(temperature, width, height, int(np.prod(output_shapes[0][1:-1])))
    return LogitLoss(temperature)

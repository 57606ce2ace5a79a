"""The teacher's outputs on a fixed set of views of the training frames, computed once and reused.

The teacher never changes during distillation, so its forward pass on an image it has seen before is wasted
work: with a fresh random augmentation at every step it runs once per image per epoch, a third of a YOLOX-nano
step on the CPU. Here every frame has ``views`` fixed views (:meth:`compile.augment.Augment.view`: the plain
frame and ``views - 1`` augmentations, each made from a seed of its own); a batch draws one view per frame
from torch's generator, and the teacher runs only on views it has not seen. After about ``views`` epochs it
no longer runs at all, and a step is the student's forward and backward pass.

Memory: each view keeps its uint8 canvas and the teacher's outputs in float16 (YOLOX-nano at 416x416:
0.5 MB + 0.6 MB). Batches that mix images (mixup) or distil feature maps cannot be cached; the distiller
then runs the teacher on every batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from compile.augment import Augment


def as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


class TeacherCache:
    """Batches of (input, teacher outputs) over fixed views of ``frames`` (BGR images)."""

    def __init__(self, teacher: nn.Module, augment: Augment, frames: Sequence[np.ndarray], views: int, seed: int,
                 device: torch.device):
        if views < 1:
            raise ValueError(f"views must be at least 1, not {views}")
        self.teacher, self.augment, self.frames = teacher, augment, frames
        self.views, self.seed, self.device = views, seed, device
        self.store: dict[tuple[int, int], tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = {}
        self.teacher_images = 0  # how many images the teacher has run on (the cost the cache saves)

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The normalised input batch and the teacher's outputs (float32) for one view of each frame."""
        keys = list(zip(indices, torch.randint(self.views, (len(indices),)).tolist()))
        missing = list(dict.fromkeys(key for key in keys if key not in self.store))
        if missing:
            self._run_teacher(missing)
        canvases = torch.stack([self.store[key][0] for key in keys])
        outputs = zip(*(self.store[key][1] for key in keys))
        return (self.augment.normalise(canvases).to(self.device),
                tuple(torch.stack(items).to(self.device, torch.float32) for items in outputs))

    def _run_teacher(self, keys: Sequence[tuple[int, int]]) -> None:
        canvases = torch.stack([self.augment.view(self.frames[i], view, self._seed(i, view)) for i, view in keys])
        with torch.no_grad():
            outputs = as_tuple(self.teacher(self.augment.normalise(canvases).to(self.device)))
        for n, key in enumerate(keys):
            self.store[key] = (canvases[n], tuple(o[n].to("cpu", torch.float16) for o in outputs))
        self.teacher_images += len(keys)

    def _seed(self, index: int, view: int) -> int:
        return int(np.random.SeedSequence([self.seed, index, view]).generate_state(1)[0])

"""Training batches from the user's frames: torchvision transforms v2, then the bundle's own input spec.

Teacher and student see the *same* augmented batch, so the teacher's outputs on it are correct targets
whatever the augmentation did (a flipped or mixed image has a flipped or mixed answer): augmentation only
has to make the few hundred frames of a user's footage look like more, never to preserve labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torchvision.transforms import v2

from edge.bundle import InputSpec

MIXUP_ALPHA = 0.4  # Beta(α, α) mixing weights, as mixup papers use for ImageNet-scale training


def frame_tensors(images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """BGR uint8 frames (OpenCV) → RGB uint8 ``[3, H, W]`` tensors, the form v2 transforms take."""
    return [torch.from_numpy(np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))).permute(2, 0, 1)
            for image in images]


class Augment:
    """Random resized crop to the model's input size, horizontal flip, colour jitter, RandAugment, and
    (where the task allows mixing two scenes, ``mixup=True``) mixup of whole batches. All randomness comes
    from torch's global generator, so a seeded run (and a resumed one, which restores it) repeats exactly."""

    def __init__(self, spec: InputSpec, mixup: bool):
        self.spec, self.mixup = spec, mixup
        self.transform = v2.Compose([
            v2.RandomResizedCrop((spec.height, spec.width), scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
            v2.RandAugment(num_ops=2, magnitude=7),
        ])
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """A float batch ``[B, 3, H, W]`` ready for the model, in its colour order and normalisation."""
        batch = torch.stack([self.transform(frame) for frame in frames]).float()
        if self.mixup and len(batch) > 1 and torch.rand(()) < 0.5:
            weight = torch.distributions.Beta(MIXUP_ALPHA, MIXUP_ALPHA).sample()
            batch = weight * batch + (1 - weight) * batch.roll(1, dims=0)
        if self.spec.color == "bgr":
            batch = batch.flip(1)
        return (batch - self.mean) / self.std

"""Training batches from the user's frames, through the bundle's own resize (letterbox, stretch, …).

Teacher and student see the *same* augmented batch, so the teacher's outputs on it are correct targets
whatever the augmentation did (a flipped or mixed image has a flipped or mixed answer): augmentation only
has to make the few hundred frames of a user's footage look like more, never to preserve labels.

The geometry is a random resized crop of the frame put on the model's canvas by the runtime's own
:class:`edge.preprocess.Preprocessor`: a letterboxed detector trains on letterboxed crops, pad and all, at
the aspect ratios it will see, rather than on squares stretched from them. Then a horizontal flip, colour
jitter, optionally RandAugment (torchvision transforms v2) and mixup of whole batches.

With ``rect`` (:func:`rect_input`, Ultralytics' rectangular training) the canvas is cut down to what the
letterboxed footage fills: on 4:3 footage a 416x416 letterbox is a quarter grey band, which costs a quarter of
every step and teaches nothing. Objects keep the scale they have on the full canvas.

A *view* is one augmentation of one frame; :meth:`Augment.view` makes view ``k`` of a frame from a seed of
its own, so the same view can be made again (and the teacher's outputs on it cached, see
:mod:`compile.teacher_cache`). View 0 is the frame exactly as the runtime feeds it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torchvision import transforms
from torchvision.transforms import v2

from edge.bundle import InputSpec
from edge.preprocess import Preprocessor

MIXUP_ALPHA = 0.4  # Beta(α, α) mixing weights, as mixup papers use for ImageNet-scale training
CROP_SCALE = (0.35, 1.0)  # share of the frame's area a random crop keeps
CROP_RATIO = (3 / 4, 4 / 3)  # its aspect ratio relative to the frame's
RECT_STRIDE = 32  # a rect canvas's sides stay multiples of this: the coarsest stride of common detectors and segmenters


def rect_input(spec: InputSpec, frames: Sequence[np.ndarray]) -> InputSpec:
    """``spec`` with its canvas cut down to what letterboxing ``frames`` fills, rounded up to ``RECT_STRIDE``
    (never beyond the model's own size): the same scale, without the grey bands."""
    if not spec.resize.startswith("letterbox"):
        raise ValueError(f"--rect crops a letterbox's grey bands; this model's input is resized by '{spec.resize}'")
    if not frames:
        raise ValueError("--rect needs frames to measure: give --distill SOURCE")
    width = height = 0
    for rows, columns in {frame.shape[:2] for frame in frames}:
        scale = min(spec.width / columns, spec.height / rows)  # as the runtime's Preprocessor letterboxes
        width, height = max(width, round(columns * scale)), max(height, round(rows * scale))
    width, height = (min(full, math.ceil(side / RECT_STRIDE) * RECT_STRIDE)
                     for full, side in ((spec.width, width), (spec.height, height)))
    shape = (1, spec.channels, height, width) if spec.layout == "nchw" else (1, height, width, spec.channels)
    return replace(spec, shape=shape)


class Augment:
    """Random views of BGR frames as model input batches. All randomness comes from torch's global generator
    (or, for :meth:`view` with a seed, from that seed alone), so a seeded run repeats exactly."""

    def __init__(self, spec: InputSpec, mixup: bool, randaugment: bool = False):
        self.spec, self.mixup = spec, mixup
        # The runtime's resize into a uint8 RGB canvas; the colour transforms work on that, normalising comes last.
        self.resize = Preprocessor(replace(spec, shape=(1, spec.height, spec.width, 3), layout="nhwc", color="rgb",
                                           dtype="uint8", mean=(0.0,) * 3, std=(1.0,) * 3))
        self.canvas = np.empty((spec.height, spec.width, 3), np.uint8)
        self.colour = v2.Compose([
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
            *([v2.RandAugment(num_ops=2, magnitude=7)] if randaugment else []),
        ])
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """A float batch ``[B, C, H, W]`` of fresh random views, ready for the model."""
        batch = torch.stack([self._augmented(frame) for frame in frames])
        if self.mixup and len(batch) > 1 and torch.rand(()) < 0.5:
            weight = torch.distributions.Beta(MIXUP_ALPHA, MIXUP_ALPHA).sample()
            return self.normalise(weight * batch.float() + (1 - weight) * batch.roll(1, dims=0).float())
        return self.normalise(batch)

    def view(self, frame: np.ndarray, index: int, seed: int) -> torch.Tensor:
        """View ``index`` of ``frame`` as a uint8 RGB ``[3, H, W]`` canvas: 0 is the plain frame, the others
        random views drawn from ``seed`` alone (torch's global generator is left as it was)."""
        if index == 0:
            return self._canvas(frame)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._augmented(frame)

    def normalise(self, canvases: torch.Tensor) -> torch.Tensor:
        """RGB canvases ``[B, 3, H, W]`` (uint8 or float pixel values) → the model's colour order and scale."""
        batch = canvases.float()
        if self.spec.color == "bgr":
            batch = batch.flip(1)
        return (batch - self.mean) / self.std

    def _augmented(self, frame: np.ndarray) -> torch.Tensor:
        height, width = frame.shape[:2]
        aspect = width / height
        top, left, h, w = transforms.RandomResizedCrop.get_params(
            torch.empty(()).expand(1, height, width), scale=CROP_SCALE, ratio=tuple(r * aspect for r in CROP_RATIO))
        return self.colour(self._canvas(frame[top:top + h, left:left + w]))

    def _canvas(self, frame: np.ndarray) -> torch.Tensor:
        self.resize(frame, self.canvas)
        return torch.from_numpy(self.canvas).permute(2, 0, 1).clone()

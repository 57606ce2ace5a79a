"""Cascades: bundles of several networks that run several times per frame, on inputs that depend on
earlier results (MTCNN's image pyramid, then crops of what it found).

A cascade is a small model runner of its own, not a reader of outputs: it receives the frame and drives
its own backends, opened through the model runner. ``bundle.json`` names it in ``decoder`` like any
decoder, so it registers in the same registry (:data:`edge.decoders.base.DECODERS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.backends.base import Backend
from edge.bundle.spec import Bundle
from edge.decoders.base import DecoderBase

# (role, input shapes) → an opened backend; what a Cascade is given instead of outputs.
BackendOpener = Callable[[str, dict[str, tuple[int, ...]]], Backend]


class Cascade(DecoderBase, ABC):
    """Runs a bundle of several networks on a frame; fills ``timings`` with the stage seconds of its last call.

    ``open(role, input_shapes)`` opens one of the bundle's model files; the model runner owns (and closes)
    what it opens.
    """

    def __init__(self, bundle: Bundle, open_backend: BackendOpener):
        super().__init__(bundle)
        self.open = open_backend
        self.timings = {"preprocess": 0.0, "infer": 0.0, "postprocess": 0.0}

    @abstractmethod
    def __call__(self, image: np.ndarray) -> Any:
        """Runs the cascade on one BGR frame; the result is in frame pixels."""

"""The decoder interface and registry: one decoder per model output family, chosen by ``bundle.decoder``.

Most bundles hold one network: the model runner feeds it and the :class:`Decoder` reads its outputs. A
:class:`Cascade` is for bundles whose networks run several times per frame, on inputs that depend on
earlier results (MTCNN's image pyramid, then crops): it receives the frame and drives its own backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from edge.backends.base import Backend, TensorInfo
from edge.bundle import Bundle
from edge.errors import BadInputError
from edge.preprocess import Transform

DECODERS: dict[str, type[DecoderBase]] = {}

# (role, input shapes) → an opened backend; what a Cascade is given instead of outputs.
BackendOpener = Callable[[str, dict[str, tuple[int, ...]]], Backend]


def register(cls: type[DecoderBase]) -> type[DecoderBase]:
    """Class decorator: makes a decoder selectable by its ``name`` in ``bundle.json``."""
    DECODERS[cls.name] = cls
    return cls


class DecoderBase:
    """What bundle validation reads from every registered decoder.

    ``roles``: the model files the bundle must have. ``accepts``: which ``needs`` the decoder can work
    with (``detector``: it runs on crops of another bundle's boxes; ``instances``: it merges another
    bundle's instance masks into its own map).
    """

    name: ClassVar[str]
    task: ClassVar[str]
    roles: ClassVar[tuple[str, ...]] = ("model",)
    accepts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.thresholds = bundle.thresholds

    def arg(self, key: str, default: Any) -> Any:
        return self.bundle.decoder_args.get(key, default)

    def bad(self, what: str) -> BadInputError:
        """An error about this bundle's model or decoder arguments, naming the bundle."""
        return BadInputError(f"{self.bundle.root}: decoder '{self.name}': {what}")


class Decoder(DecoderBase, ABC):
    """Turns raw model outputs into a result in source-frame pixels.

    Everything that depends only on the model (grids, anchors, output names) is prepared in ``__init__``;
    ``__call__`` runs per frame and must stay vectorised. ``batched``: every output's first axis is the
    input's batch, so the items of a batched run can be sliced apart (false for outputs of a run-time count
    of detections, which would be sliced wrongly); only then does a dynamic-batch model run several frames
    or crops in one call.
    """

    batched: ClassVar[bool] = True

    def __init__(self, bundle: Bundle, outputs: Sequence[TensorInfo]):
        super().__init__(bundle)
        self.outputs = {o.name: o for o in outputs}

    @abstractmethod
    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Any:
        """Decodes one frame's outputs (batch item 0)."""

    def output_named(self, key: str, default: str) -> str:
        """The output name given by ``decoder_args[key]`` (default ``default``), checked against the model."""
        name = self.arg(key, default)
        if name not in self.outputs:
            raise self.bad(f"the model has no output '{name}' (decoder_args.{key}); outputs are "
                           f"{', '.join(self.outputs)}")
        return name


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

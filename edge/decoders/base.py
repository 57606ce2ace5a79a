"""The decoder interface and registry: one decoder per model output family, chosen by ``bundle.decoder``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from edge.backends.base import TensorInfo
from edge.bundle import Bundle
from edge.errors import BadInputError
from edge.preprocess import Transform

DECODERS: dict[str, type[Decoder]] = {}


def register(cls: type[Decoder]) -> type[Decoder]:
    """Class decorator: makes a decoder selectable by its ``name`` in ``bundle.json``."""
    DECODERS[cls.name] = cls
    return cls


class Decoder(ABC):
    """Turns raw model outputs into a result in source-frame pixels.

    Everything that depends only on the model (grids, anchors, output names) is prepared in ``__init__``;
    ``__call__`` runs per frame and must stay vectorised.
    """

    name: ClassVar[str]
    task: ClassVar[str]

    def __init__(self, bundle: Bundle, outputs: Sequence[TensorInfo]):
        self.bundle = bundle
        self.thresholds = bundle.thresholds
        self.outputs = {o.name: o for o in outputs}

    @abstractmethod
    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Any:
        """Decodes one frame's outputs (batch item 0)."""

    def arg(self, key: str, default: Any) -> Any:
        return self.bundle.decoder_args.get(key, default)

    def bad(self, what: str) -> BadInputError:
        """An error about this bundle's model or decoder arguments, naming the bundle."""
        return BadInputError(f"{self.bundle.root}: decoder '{self.name}': {what}")

    def output_named(self, key: str, default: str) -> str:
        """The output name given by ``decoder_args[key]`` (default ``default``), checked against the model."""
        name = self.arg(key, default)
        if name not in self.outputs:
            raise self.bad(f"the model has no output '{name}' (decoder_args.{key}); outputs are "
                           f"{', '.join(self.outputs)}")
        return name

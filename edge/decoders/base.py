"""The decoder interface and registry: one decoder per model output family, chosen by ``bundle.decoder``.

Most bundles hold one network: the model runner feeds it and the :class:`Decoder` reads its outputs. A
bundle whose networks run several times per frame is a :class:`~edge.decoders.cascade.Cascade`, registered
here too, since ``bundle.json`` names both the same way.

Each decoder declares its ``decoder_args`` as a frozen dataclass (``Args``): the keys it reads, their types
and defaults. A bundle's arguments are checked against it when the bundle loads, so a misspelt key fails
with "did you mean" instead of being ignored; the decoder reads the typed values as ``self.args``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from edge.backends.base import TensorInfo
from edge.bundle.fields import FieldError, parse
from edge.bundle.spec import Bundle
from edge.errors import BadInputError
from edge.geometry import Transform

DECODERS: dict[str, type[DecoderBase]] = {}


@dataclass(frozen=True)
class NoArgs:
    """The ``decoder_args`` of a decoder that takes none."""


@dataclass(frozen=True)
class OutputArgs:
    """``output``: the model output to read (default: the model's first)."""

    output: str | None = None


class DecoderBase:
    """What bundle validation reads from every registered decoder, declared on the class line, where a
    ``key`` registers the class under that name (PEP 487's plugin registry)::

        class YoloxDecoder(Decoder, key="yolox", task="detection", args=OutputArgs): ...

    ``roles``: the model files the bundle must have (default ``model``). ``accepts``: which ``needs`` the
    decoder can work with (``detector``: it runs on crops of another bundle's boxes; ``instances``: it
    merges another bundle's instance masks into its own map). ``aliases``: earlier names that bundles may
    still hold. ``args``: the dataclass of its ``decoder_args``. A class without a key (a family's
    shared base) is not registered; its subclasses inherit what it declares.
    """

    name: ClassVar[str]
    task: ClassVar[str]
    roles: ClassVar[tuple[str, ...]] = ("model",)
    accepts: ClassVar[tuple[str, ...]] = ()
    aliases: ClassVar[tuple[str, ...]] = ()
    Args: ClassVar[type] = NoArgs

    def __init_subclass__(cls, *, key: str | None = None, task: str | None = None,
                          roles: tuple[str, ...] | None = None, accepts: tuple[str, ...] | None = None,
                          aliases: tuple[str, ...] = (), args: type | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        for attribute, value in (("task", task), ("roles", roles), ("accepts", accepts), ("Args", args)):
            if value is not None:
                setattr(cls, attribute, value)
        if key is not None:
            cls.name, cls.aliases = key, aliases
            for registered in (key, *aliases):
                DECODERS[registered] = cls

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.thresholds = bundle.thresholds
        try:  # checked when the bundle loaded; again here for bundles made in code
            self.args: Any = parse(self.Args, bundle.decoder_args, "decoder_args")
        except FieldError as e:
            raise self.bad(str(e)) from None

    def bad(self, what: str, about: str = "model") -> DecoderMismatch:
        """An error about this bundle's model, decoder arguments or ``labels`` (``about``), naming the bundle."""
        return DecoderMismatch(f"{self.bundle.root}: decoder '{self.name}': {what}", what, about)

    def check_labels(self, classes: int) -> None:
        """The bundle's labels, when it has any, name each of the model's ``classes`` once, none blank."""
        labels = self.bundle.labels
        if labels and len(labels) != classes:
            raise self.bad(f"{len(labels)} labels for an output of {classes} classes", "labels")
        blank = [i for i, label in enumerate(labels) if not label.strip()]
        if blank:
            raise self.bad(f"label {blank[0]} is blank", "labels")


class DecoderMismatch(BadInputError):
    """A bundle whose decoder, decoder arguments or labels do not fit its model; ``problem`` says what, without
    the bundle's name, for ``bundle create`` to blame the flag."""

    def __init__(self, message: str, problem: str, about: str):
        super().__init__(message)
        self.problem, self.about = problem, about


class Decoder(DecoderBase, ABC):
    """Turns raw model outputs into a result in source-frame pixels.

    Everything that depends only on the model (grids, anchors, output names) is prepared in ``__init__``;
    ``__call__`` runs per frame and must stay vectorised. ``batched``: every output's first axis is the
    input's batch, so the items of a batched run can be sliced apart (false for outputs of a run-time count
    of detections, which would be sliced wrongly); only then does a dynamic-batch model run several frames
    or crops in one call. Args fields named ``output`` or ``*_output`` name model outputs: they are checked
    against the model here (a left-out ``output`` is the model's first).
    """

    batched: ClassVar[bool] = True

    def __init__(self, bundle: Bundle, outputs: Sequence[TensorInfo]):
        super().__init__(bundle)
        self.outputs = {o.name: o for o in outputs}
        names = {}
        for f in fields(self.args):
            if f.name == "output" or f.name.endswith("_output"):
                name = getattr(self.args, f.name) or next(iter(self.outputs))
                if name not in self.outputs:
                    raise self.bad(f"the model has no output '{name}' (decoder_args.{f.name}); outputs are "
                                   f"{', '.join(self.outputs)}")
                names[f.name] = name
        self.args = replace(self.args, **names)

    def class_map_output(self, transform: Transform) -> str | None:
        """The output whose per-pixel argmax, nearest-resized to the frame, is all this decoder would compute
        from it for this frame, so a backend may compute it where the logits are (``Backend.class_map``);
        then :meth:`from_class_map` makes the result. ``None`` (this default): the decoder needs the outputs."""
        return None

    def from_class_map(self, class_map: np.ndarray) -> Any:
        """The result of a frame from the class map of :meth:`class_map_output`'s output."""
        raise NotImplementedError(f"decoder '{self.name}' takes outputs, not class maps")

    @abstractmethod
    def __call__(self, outputs: Mapping[str, np.ndarray], transform: Transform) -> Any:
        """Decodes one frame's outputs (batch item 0)."""

    def output_shape(self, expected: str, rank: int, static: Sequence[int] = (),
                     fits: Callable[[tuple], bool] = lambda shape: True) -> tuple:
        """The shape of ``args.output``, checked: ``rank`` axes, those in ``static`` fixed in the model, and
        whatever ``fits`` asks; else an error saying the ``expected`` shape."""
        shape = self.outputs[self.args.output].shape
        if len(shape) != rank or not all(isinstance(shape[axis], int) for axis in static) or not fits(shape):
            raise self.bad(f"expected an output {expected}, got {list(shape)}")
        return shape

    def load_anchors(self, count: int) -> np.ndarray:
        """The bundle's ``anchors`` file (``.npy``) as float32 ``[count, 4]``: one row per model prediction."""
        try:
            anchors = np.load(self.bundle.file("anchors")).astype(np.float32)
        except (OSError, ValueError) as e:
            raise self.bad(f"cannot read the anchors file ({e})") from None
        if anchors.shape != (count, 4):
            raise self.bad(f"anchors {list(anchors.shape)} do not match the model's {count} predictions")
        return anchors

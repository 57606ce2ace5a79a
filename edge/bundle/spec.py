"""What a bundle says, as plain frozen values: how frames become the model's input, the thresholds, what
it takes from another bundle of the run, the labels. No file is read here; :mod:`edge.bundle.io` makes
these from ``bundle.json``, and decoders read them without depending on how they were loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from edge.errors import BadInputError

BUNDLE_FILE = "bundle.json"
TASKS = ("detection", "segmentation", "pose", "classification")
LAYOUTS = ("nchw", "nhwc")
COLORS = ("rgb", "bgr")
DTYPES = ("float32", "uint8")
RESIZES = ("letterbox", "letterbox-center", "stretch", "square-pad")
NEEDS_KEYS = ("detector", "instances")  # what a bundle may take from another bundle on the same frame


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model's input tensor (see CONTRACT.md, ``bundle create`` input options)."""

    name: str
    shape: tuple[int, int, int, int]
    layout: str = "nchw"
    color: str = "rgb"
    dtype: str = "float32"
    resize: str = "letterbox"
    pad_value: float = 114.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)

    @property
    def width(self) -> int:
        return self.shape[3] if self.layout == "nchw" else self.shape[2]

    @property
    def height(self) -> int:
        return self.shape[2] if self.layout == "nchw" else self.shape[1]

    @property
    def channels(self) -> int:
        return self.shape[1] if self.layout == "nchw" else self.shape[3]


@dataclass(frozen=True)
class Thresholds:
    """What a result keeps: scores of at least ``score``, NMS at ``iou``, the ``max_detections`` best and, where
    ``classes`` names labels, only detections of those (``None``: every class). A run may override each
    (:mod:`edge.filters`)."""

    score: float = 0.3
    iou: float = 0.45
    max_detections: int | None = 300
    classes: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """As ``bundle.json`` holds it: ``classes`` only when set."""
        values = {"score": self.score, "iou": self.iou, "max_detections": self.max_detections}
        return values if self.classes is None else {**values, "classes": list(self.classes)}


@dataclass(frozen=True)
class Needs:
    """Another bundle of the same run whose result this one works on (``bundle.json`` ``needs``).

    ``detector``: run on crops of its boxes (top-down pose, per-box classification): the boxes of
    ``classes`` (default all) scoring ``min_score`` or more, the ``max_crops`` best, grown by ``expand``
    about their centres (default by task: top-down pose keeps a margin around the person). ``instances``:
    merge its instance masks into this bundle's semantic map (panoptic). Empty (false) for a bundle that
    runs on whole frames.
    """

    # None stands for a key left out; bundle.json holds no nulls here (the "type" overrides).
    detector: str | None = field(default=None, metadata={"type": "string", "minLength": 1})
    instances: str | None = field(default=None, metadata={"type": "string", "minLength": 1})
    classes: tuple[str, ...] | None = field(default=None, metadata={"type": "array", "minItems": 1})
    min_score: float = field(default=0.0, metadata={"minimum": 0, "maximum": 1})
    expand: float | None = field(default=None, metadata={"type": "number", "minimum": 1})
    max_crops: int = field(default=16, metadata={"minimum": 1})

    DEFAULT_EXPAND: ClassVar[dict[str, float]] = {"pose": 1.25, "classification": 1.0}

    def __bool__(self) -> bool:
        return self.detector is not None or self.instances is not None

    @property
    def kind(self) -> str:
        """``detector`` or ``instances``: what is taken (load checks that a bundle names exactly one)."""
        return "detector" if self.detector is not None else "instances"

    @property
    def upstream(self) -> str | None:
        """The name of the bundle it is taken from."""
        return self.detector if self.detector is not None else self.instances

    def expand_for(self, task: str) -> float:
        return self.expand if self.expand is not None else self.DEFAULT_EXPAND[task]

    def to_json(self) -> dict[str, Any]:
        """The keys that differ from their defaults, as ``bundle.json`` holds them."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def class_label(labels: Sequence[str], class_id: int) -> str:
    """The label of a class id; ``class_{id}`` for an id the labels do not name (a model with more classes
    than the bundle has names, or none), so every id has a printable, stable name."""
    return labels[class_id] if 0 <= class_id < len(labels) else f"class_{class_id}"


@dataclass
class Bundle:
    """A validated bundle. ``files`` maps a role (``model``, ``anchors``, …) to a path inside ``root``.

    ``decoder_args`` is the JSON object as written; each decoder reads it through its typed ``Args``.
    """

    root: Path
    name: str
    task: str
    decoder: str
    input: InputSpec
    labels: list[str]
    thresholds: Thresholds
    files: dict[str, str]
    provenance: dict[str, Any]
    decoder_args: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    cpu_precision: str | None = None
    needs: Needs = field(default_factory=Needs)
    extra: dict[str, Any] = field(default_factory=dict)

    def file(self, role: str) -> Path:
        """Absolute path of the file with this role; a missing role is a bad bundle."""
        if role not in self.files:
            raise BadInputError(f"{self.root / BUNDLE_FILE}: field 'files.{role}' is required by decoder "
                                f"'{self.decoder}'")
        return self.root / self.files[role]

    def label(self, class_id: int) -> str:
        return class_label(self.labels, class_id)

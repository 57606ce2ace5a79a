"""Bundles: a folder holding ``bundle.json`` and the model files it names.

``bundle.json`` is the single source of truth for how a model is fed and read (input spec, decoder,
labels, thresholds), so the runtime never guesses from file names. Loading validates the JSON against
:data:`BUNDLE_SCHEMA`, then the sha256 of every file, and raises :class:`BadInputError` with one line
naming the field or file at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from edge import __version__
from edge.errors import BadInputError

SCHEMA_VERSION = 1
BUNDLE_FILE = "bundle.json"
TASKS = ("detection", "segmentation", "pose", "classification")
LAYOUTS = ("nchw", "nhwc")
COLORS = ("rgb", "bgr")
DTYPES = ("float32", "uint8")
RESIZES = ("letterbox", "letterbox-center", "stretch", "square-pad")
NEEDS_KEYS = ("detector", "instances")  # what a bundle may take from another bundle on the same frame

_number_list = {"type": "array", "items": {"type": "number"}, "minItems": 1}
BUNDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "name", "task", "decoder", "input", "labels", "thresholds", "files", "provenance"],
    "properties": {
        "schema": {"type": "integer", "minimum": 1},
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]+$"},
        "task": {"enum": list(TASKS)},
        "decoder": {"type": "string", "minLength": 1},
        "decoder_args": {"type": "object"},
        "precision": {"type": "string"},
        # What files.model_cpu holds: the file ONNX Runtime runs on a CPU when it differs from files.model
        # (an int8 bundle's Q/DQ model is made for TensorRT; on a CPU fp32 or a u8s8 variant may be faster).
        "cpu_precision": {"type": "string"},
        "input": {
            "type": "object",
            "required": ["name", "shape", "layout", "color", "dtype", "resize", "pad_value", "mean", "std"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 4, "maxItems": 4},
                "layout": {"enum": list(LAYOUTS)},
                "color": {"enum": list(COLORS)},
                "dtype": {"enum": list(DTYPES)},
                "resize": {"enum": list(RESIZES)},
                "pad_value": {"type": "number", "minimum": 0, "maximum": 255},
                "mean": _number_list,
                "std": {**_number_list, "items": {"type": "number", "exclusiveMinimum": 0}},
            },
        },
        "labels": {"type": "array", "items": {"type": "string"}},
        "thresholds": {
            "type": "object",
            "required": ["score", "iou"],
            "properties": {
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "iou": {"type": "number", "minimum": 0, "maximum": 1},
                "max_detections": {"type": "integer", "minimum": 1},
            },
        },
        "files": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["path", "sha256"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
        },
        "provenance": {"type": "object"},
        # Another bundle of the same run whose result this one works on (see edge.model.ModelSet):
        # "detector" crops its boxes (top-down pose, per-box classification), "instances" merges its
        # instance masks with this bundle's semantic map (panoptic).
        "needs": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "detector": {"type": "string", "minLength": 1},
                "instances": {"type": "string", "minLength": 1},
                "classes": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "min_score": {"type": "number", "minimum": 0, "maximum": 1},
                "expand": {"type": "number", "minimum": 1},
                "max_crops": {"type": "integer", "minimum": 1},
            },
        },
    },
}


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
    score: float = 0.3
    iou: float = 0.45
    max_detections: int = 300


@dataclass
class Bundle:
    """A validated bundle. ``files`` maps a role (``model``, ``anchors``, …) to a path inside ``root``."""

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
    needs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def file(self, role: str) -> Path:
        """Absolute path of the file with this role; a missing role is a bad bundle."""
        if role not in self.files:
            raise BadInputError(f"{self.root / BUNDLE_FILE}: field 'files.{role}' is required by decoder "
                                f"'{self.decoder}'")
        return self.root / self.files[role]

    def label(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else f"class_{class_id}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_bundle(root: str | os.PathLike) -> Bundle:
    """Reads and validates a bundle folder; every problem is one :class:`BadInputError` line."""
    root = Path(root)
    path = root / BUNDLE_FILE
    if not root.is_dir():
        raise BadInputError(f"{root}: bundle folder not found")
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{path}: not found (a bundle is a folder with bundle.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{path}: not valid JSON ({e})") from None
    _validate(doc, path)
    bundle = _from_doc(root, doc)
    _check_decoder(bundle, path)
    for role, rel in bundle.files.items():
        _check_file(root, role, rel, doc["files"][role]["sha256"], path)
    return bundle


def _validate(doc: Any, path: Path) -> None:
    error = best_match(jsonschema.Draft202012Validator(BUNDLE_SCHEMA).iter_errors(doc))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise BadInputError(f"{path}: field '{where}': {error.message}" if where else f"{path}: {error.message}")
    if doc["schema"] > SCHEMA_VERSION:
        raise BadInputError(f"{path}: field 'schema': version {doc['schema']} is newer than this edge "
                            f"({__version__}) reads (up to {SCHEMA_VERSION})")
    spec = doc["input"]
    channels = spec["shape"][1] if spec["layout"] == "nchw" else spec["shape"][3]
    if channels != 3:
        raise BadInputError(f"{path}: field 'input.shape': {spec['shape']} has {channels} channels in layout "
                            f"{spec['layout']}; edge feeds 3-channel images")
    for key in ("mean", "std"):
        if len(spec[key]) not in (1, channels):
            raise BadInputError(f"{path}: field 'input.{key}': expected 1 or {channels} values, got {len(spec[key])}")
    if spec["dtype"] == "uint8" and (any(m != 0 for m in spec["mean"]) or any(s != 1 for s in spec["std"])):
        raise BadInputError(f"{path}: field 'input.mean': a uint8 input cannot be normalised (mean 0, std 1)")


def _from_doc(root: Path, doc: dict[str, Any]) -> Bundle:
    spec = dict(doc["input"])
    channels = 3
    spec["shape"] = tuple(spec["shape"])
    for key in ("mean", "std"):
        values = [float(v) for v in spec[key]]
        spec[key] = tuple(values * channels if len(values) == 1 else values)
    known = {"schema", "name", "task", "decoder", "decoder_args", "input", "labels", "thresholds", "files",
             "provenance", "precision", "cpu_precision", "needs"}
    return Bundle(
        root=root,
        name=doc["name"],
        task=doc["task"],
        decoder=doc["decoder"],
        decoder_args=dict(doc.get("decoder_args", {})),
        input=InputSpec(**spec),
        labels=list(doc["labels"]),
        thresholds=Thresholds(**doc["thresholds"]),
        files={role: entry["path"] for role, entry in doc["files"].items()},
        provenance=dict(doc["provenance"]),
        precision=doc.get("precision", "fp32"),
        cpu_precision=doc.get("cpu_precision"),
        needs=dict(doc.get("needs", {})),
        extra={k: v for k, v in doc.items() if k not in known},
    )


def _check_decoder(bundle: Bundle, path: Path) -> None:
    from edge.decoders import DECODERS  # the registry imports decoders, which import this module

    decoder = DECODERS.get(bundle.decoder)
    if decoder is None:
        raise BadInputError(f"{path}: field 'decoder': unknown decoder '{bundle.decoder}' "
                            f"(known: {', '.join(sorted(DECODERS))})")
    if decoder.task != bundle.task:
        raise BadInputError(f"{path}: field 'task': decoder '{bundle.decoder}' is for task '{decoder.task}', "
                            f"not '{bundle.task}'")
    for role in decoder.roles:
        if role not in bundle.files:
            raise BadInputError(f"{path}: field 'files.{role}' is required by decoder '{bundle.decoder}'")
    kinds = [key for key in NEEDS_KEYS if key in bundle.needs]
    if bundle.needs and len(kinds) != 1:
        raise BadInputError(f"{path}: field 'needs': name exactly one of {', '.join(NEEDS_KEYS)}")
    if bundle.needs and kinds[0] not in decoder.accepts:
        takes = f"takes only {', '.join(decoder.accepts)}" if decoder.accepts else "runs on whole frames only"
        raise BadInputError(f"{path}: field 'needs.{kinds[0]}': decoder '{bundle.decoder}' {takes}")


def _check_file(root: Path, role: str, rel: str, expected: str, path: Path) -> None:
    file = (root / rel).resolve()
    if root.resolve() not in file.parents:
        raise BadInputError(f"{path}: field 'files.{role}.path': '{rel}' points outside the bundle")
    if not file.is_file():
        raise BadInputError(f"{file}: missing (named in bundle.json 'files.{role}')")
    actual = sha256_file(file)
    if actual != expected:
        raise BadInputError(f"{file}: sha256 mismatch (file is {actual[:12]}…, bundle.json says {expected[:12]}…): "
                            f"the file was changed or truncated after the bundle was made")


def provenance(source: str, tool: str, **details: Any) -> dict[str, Any]:
    """The provenance block every bundle carries: where it came from, when, and by which edge."""
    return {"source": source, "tool": tool, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "edge_version": __version__, **details}


def write_bundle(root: str | os.PathLike, *, name: str, task: str, decoder: str, input: InputSpec,
                 labels: list[str], thresholds: Thresholds, files: Mapping[str, str],
                 provenance: Mapping[str, Any], decoder_args: Mapping[str, Any] | None = None,
                 precision: str = "fp32", cpu_precision: str | None = None, needs: Mapping[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None) -> Bundle:
    """Writes ``bundle.json`` for files already inside ``root`` (hashing them) and loads it back.

    Loading back runs the same validation a device would, so a bundle that is written is a bundle that loads.
    """
    root = Path(root)
    doc: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "name": name,
        "task": task,
        "decoder": decoder,
        "decoder_args": dict(decoder_args or {}),
        "precision": precision,
        **({"cpu_precision": cpu_precision} if cpu_precision else {}),
        "input": {**asdict(input), "shape": list(input.shape), "mean": list(input.mean), "std": list(input.std)},
        "labels": list(labels),
        "thresholds": asdict(thresholds),
        "files": {role: {"path": rel, "sha256": sha256_file(root / rel)} for role, rel in files.items()},
        "provenance": dict(provenance),
        **({"needs": dict(needs)} if needs else {}),
        **(extra or {}),
    }
    _write_json_atomic(root / BUNDLE_FILE, doc)
    return load_bundle(root)


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bundle-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a service account on the device must read it too
    os.replace(tmp, path)

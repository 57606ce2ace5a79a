"""The ``bundle.json`` schema and the checks JSON schema cannot say (channel count, normalisation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge import __version__
from edge.bundle.fields import FieldError, check, schema_of
from edge.bundle.spec import COLORS, DTYPES, LAYOUTS, RESIZES, TASKS, Needs
from edge.errors import BadInputError
from edge.paths import NAME_CHARACTERS

SCHEMA_VERSION = 1

_number_list = {"type": "array", "items": {"type": "number"}, "minItems": 1}
BUNDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "name", "task", "decoder", "input", "labels", "thresholds", "files", "provenance"],
    "properties": {
        "schema": {"type": "integer", "minimum": 1},
        "name": {"type": "string", "pattern": f"^[{NAME_CHARACTERS}]+$"},
        "task": {"enum": list(TASKS)},
        "decoder": {"type": "string", "minLength": 1},
        # Checked against the decoder's own Args when the bundle loads (edge.bundle.io).
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
        "labels": {"type": "array", "items": {"type": "string", "pattern": "\\S"}},  # none blank
        "thresholds": {
            "type": "object",
            "required": ["score", "iou"],
            "properties": {
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "iou": {"type": "number", "minimum": 0, "maximum": 1},
                "max_detections": {"type": "integer", "minimum": 1},
                "classes": {"type": "array", "items": {"type": "string"}, "minItems": 1},  # default: every class
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
        "needs": {**schema_of(Needs), "minProperties": 1},  # see edge.bundle.spec.Needs
    },
}


def validate(doc: Any, path: Path) -> None:
    """Raises :class:`BadInputError` naming ``path`` and the field at fault."""
    try:
        check(BUNDLE_SCHEMA, doc)
    except FieldError as e:
        raise BadInputError(f"{path}: {e}") from None
    if doc["schema"] > SCHEMA_VERSION:
        raise BadInputError(f"{path}: field 'schema': version {doc['schema']} is newer than this edge "
                            f"({__version__}) reads (up to {SCHEMA_VERSION})")
    unknown = [c for c in doc["thresholds"].get("classes", ()) if c not in doc["labels"]]
    if unknown:
        raise BadInputError(f"{path}: field 'thresholds.classes': '{unknown[0]}' is not one of the labels")
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

"""Reading and writing bundle folders: a folder holding ``bundle.json`` and the model files it names.

``bundle.json`` is the single source of truth for how a model is fed and read (input spec, decoder,
labels, thresholds), so the runtime never guesses from file names. Loading validates the JSON against
:data:`~edge.bundle.schema.BUNDLE_SCHEMA`, the decoder's own arguments and needs against their typed
declarations, then the sha256 of every file, and raises :class:`BadInputError` with one line naming the
field or file at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge import __version__
from edge.bundle.fields import FieldError, check, parse, schema_of
from edge.bundle.schema import SCHEMA_VERSION, validate
from edge.bundle.spec import BUNDLE_FILE, NEEDS_KEYS, Bundle, InputSpec, Needs, Thresholds
from edge.errors import BadInputError
from edge.files import write_json_atomic

_KNOWN = {"schema", "name", "task", "decoder", "decoder_args", "input", "labels", "thresholds", "files",
          "provenance", "precision", "cpu_precision", "needs"}


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
    validate(doc, path)
    bundle = _from_doc(root, doc)
    _check_decoder(bundle, path)
    for role, rel in bundle.files.items():
        _check_file(root, role, rel, doc["files"][role]["sha256"], path)
    return bundle


def _from_doc(root: Path, doc: dict[str, Any]) -> Bundle:
    spec = dict(doc["input"])
    channels = 3
    spec["shape"] = tuple(spec["shape"])
    for key in ("mean", "std"):
        values = [float(v) for v in spec[key]]
        spec[key] = tuple(values * channels if len(values) == 1 else values)
    return Bundle(
        root=root,
        name=doc["name"],
        task=doc["task"],
        decoder=doc["decoder"],
        decoder_args=dict(doc.get("decoder_args", {})),
        input=InputSpec(**spec),
        labels=list(doc["labels"]),
        thresholds=parse(Thresholds, doc["thresholds"], "thresholds"),  # the schema has checked it
        files={role: entry["path"] for role, entry in doc["files"].items()},
        provenance=dict(doc["provenance"]),
        precision=doc.get("precision", "fp32"),
        cpu_precision=doc.get("cpu_precision"),
        needs=parse(Needs, doc.get("needs", {})),  # the schema has checked it
        extra={k: v for k, v in doc.items() if k not in _KNOWN},
    )


def _check_decoder(bundle: Bundle, path: Path) -> None:
    # Imported here: a decoder module imports edge.bundle.spec, and Python runs this package's __init__
    # (which imports this module) first; the registry is complete by the time a bundle is loaded.
    from edge.decoders import DECODERS

    decoder = DECODERS.get(bundle.decoder)
    if decoder is None:
        raise BadInputError(f"{path}: field 'decoder': unknown decoder '{bundle.decoder}' "
                            f"(known: {', '.join(sorted(DECODERS))})")
    if decoder.task != bundle.task:
        raise BadInputError(f"{path}: field 'task': decoder '{bundle.decoder}' is for task '{decoder.task}', "
                            f"not '{bundle.task}'")
    try:
        check(schema_of(decoder.Args), bundle.decoder_args, "decoder_args")
    except FieldError as e:
        raise BadInputError(f"{path}: {e}") from None
    for role in decoder.roles:
        if role not in bundle.files:
            raise BadInputError(f"{path}: field 'files.{role}' is required by decoder '{bundle.decoder}'")
    needs = bundle.needs
    if needs != Needs() and (needs.detector is None) == (needs.instances is None):
        raise BadInputError(f"{path}: field 'needs': name exactly one of {', '.join(NEEDS_KEYS)}")
    if needs and needs.kind not in decoder.accepts:
        takes = f"takes only {', '.join(decoder.accepts)}" if decoder.accepts else "runs on whole frames only"
        raise BadInputError(f"{path}: field 'needs.{needs.kind}': decoder '{bundle.decoder}' {takes}")


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
                 precision: str = "fp32", cpu_precision: str | None = None,
                 needs: Needs | Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> Bundle:
    """Writes ``bundle.json`` for files already inside ``root`` (hashing them) and loads it back.

    Loading back runs the same validation a device would, so a bundle that is written is a bundle that loads.
    """
    root = Path(root)
    needs = needs.to_json() if isinstance(needs, Needs) else dict(needs or {})
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
        "thresholds": thresholds.to_json(),
        "files": {role: {"path": rel, "sha256": sha256_file(root / rel)} for role, rel in files.items()},
        "provenance": dict(provenance),
        **({"needs": needs} if needs else {}),
        **(extra or {}),
    }
    write_json_atomic(root / BUNDLE_FILE, doc)
    return load_bundle(root)

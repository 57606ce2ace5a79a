"""``edge bundle info DIR`` and ``edge bundle validate DIR``.

``info`` shows what a bundle says (task, decoder, input, labels, thresholds, needs, files, engines, provenance,
and the compile and quantization reports that ``edge compile``/``edge quantize`` keep in ``bundle.json``) after
loading it as a run would, so a bundle that shows is a bundle that loads. ``validate`` goes further: it opens
the model with the backend a run would use and decodes one blank frame through it, so a model whose outputs do
not fit its decoder fails here (exit 3, one line) rather than on the device's first frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import BUNDLE_FILE, load_bundle
from edge.engines import engine_folder, list_engines

REPORTS = ("compile", "quantization")  # bundle.json blocks written by edge compile and edge quantize
SHOWN_LABELS = 12


def info(folder: str | Path) -> dict[str, Any]:
    """The bundle as a document: ``bundle.json`` with each file's size and the engines built for it."""
    bundle = load_bundle(folder)
    doc = json.loads((bundle.root / BUNDLE_FILE).read_text())
    for entry in doc["files"].values():
        entry["bytes"] = (bundle.root / entry["path"]).stat().st_size
    doc["engines"] = [{"file": path.name, "precision": tag.options.precision, "tensorrt": tag.target.tensorrt,
                       "gpu": tag.target.gpu, "compute_capability": tag.target.compute_capability,
                       "dla_core": tag.options.dla_core, "created": tag.created}
                      for path, tag in list_engines(engine_folder(bundle))]
    doc["root"] = str(bundle.root)
    return doc


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.1f} KiB"


def _block(value: Any, indent: str) -> list[str]:
    """A report block as indented ``key: value`` lines; lists and deeper blocks on one line as JSON."""
    if not isinstance(value, dict):
        return [f"{indent}{json.dumps(value)}"]
    return [f"{indent}{key}: {json.dumps(item) if isinstance(item, (dict, list)) else item}"
            for key, item in value.items()]


def render(doc: dict[str, Any]) -> str:
    """``info``'s document for a terminal."""
    spec, labels, thresholds = doc["input"], doc["labels"], doc["thresholds"]
    shown = ", ".join(labels[:SHOWN_LABELS]) + (f", … ({len(labels)} in all)" if len(labels) > SHOWN_LABELS else "")
    lines = [
        f"{doc['name']}: {doc['task']}, decoder {doc['decoder']}, precision {doc.get('precision', 'fp32')}"
        + (f" (CPU: {doc['cpu_precision']})" if doc.get("cpu_precision") else ""),
        f"  folder      {doc['root']}",
        f"  input       {spec['name']} {spec['shape']} {spec['layout']} {spec['color']} {spec['dtype']}, "
        f"{spec['resize']} (pad {spec['pad_value']:g}), mean {spec['mean']}, std {spec['std']}",
        f"  labels      {len(labels)}: {shown or '(none)'}",
        f"  thresholds  {', '.join(f'{k} {v}' for k, v in thresholds.items())}",
    ]
    if doc.get("decoder_args"):
        lines.append(f"  decoder     {json.dumps(doc['decoder_args'])}")
    if doc.get("needs"):
        lines.append(f"  needs       {json.dumps(doc['needs'])}")
    for role, entry in doc["files"].items():
        lines.append(f"  file        {role}: {entry['path']} ({_size(entry['bytes'])}, sha256 {entry['sha256'][:12]}…)")
    for engine in doc["engines"]:
        dla = f", DLA {engine['dla_core']}" if engine["dla_core"] is not None else ""
        lines.append(f"  engine      {engine['file']} ({engine['precision']}, TensorRT {engine['tensorrt']}, "
                     f"{engine['gpu']}{dla})")
    provenance = doc.get("provenance", {})
    lines.append("  provenance  " + ", ".join(f"{k} {v}" for k, v in provenance.items() if not isinstance(v, dict)))
    for report in REPORTS:
        if report in doc:
            lines.append(f"  {report}:")
            lines += _block(doc[report], "    ")
    return "\n".join(lines)


def validate(folder: str | Path, backend: str = "auto") -> str:
    """Loads the bundle (schema, decoder and its arguments, every file against its sha256), opens its model
    with ``backend`` (no engine is built) and runs one blank frame through preprocessing, the model and the
    decoder. Raises the error a run would (exit 3 for a bad bundle); returns one line saying what was checked."""
    from edge.runner import Runner

    bundle = load_bundle(folder)
    runner = Runner(bundle, backend, threads=1, allow_build=False)
    try:
        width, height = bundle.input.width, bundle.input.height
        runner(np.zeros((height, width, 3), np.uint8))
        ran = f"{runner.backend.name} ({runner.precision})"
    finally:
        runner.close()
    files = ", ".join(bundle.files)
    return (f"bundle '{bundle.name}' is valid: bundle.json, {len(bundle.files)} file(s) ({files}) match their "
            f"sha256, decoder '{bundle.decoder}' reads the model's outputs, one frame ran on {ran}")

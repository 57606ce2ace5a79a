"""``edge bundle create``: wrap an existing ONNX model into a bundle.

The model's own input tensor fills in what the user does not say (name, shape, layout, dtype); the
user says what the model cannot tell (colour order, resize, normalisation, decoder, labels).

Every flag is checked before anything is written, and a flag that does not fit the model (a decoder for
other outputs, labels for another number of classes, an input size the model does not take) is a usage
error naming the flag (exit 2). The bundle is made in a hidden folder beside ``out`` and renamed into place
once it opens as replay would open it, so a failure leaves nothing behind and a reader never sees half a
bundle; an existing bundle in ``out`` is replaced only with ``overwrite``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.backends.onnxruntime import open_session
from edge.bundle.fields import FieldError, parse
from edge.bundle.io import load_bundle, provenance, sha256_file, write_bundle
from edge.bundle.spec import Bundle, InputSpec, Needs, Thresholds
from edge.decoders import DECODERS
from edge.decoders.base import DecoderMismatch
from edge.errors import BadInputError, UsageError
from edge.paths import make_out_dir
from edge.runner import Runner


def read_labels(path: str | Path) -> list[str]:
    """One label per line, in class-index order; trailing blank lines are ignored, a blank line between
    labels or a file without any is a usage error naming ``--labels``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"{path}: cannot read labels ({e})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UsageError(f"--labels {path}: the file holds no label")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise UsageError(f"--labels {path}:{number}: blank line (one label per line, in class-index order)")
    return [line.strip() for line in lines]


def model_input_spec(onnx: Path, *, input_size: tuple[int, int] | None = None, **options: Any) -> InputSpec:
    """An :class:`InputSpec` for the model's single input; ``options`` override InputSpec fields."""
    session = open_session(onnx, threads=1)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise BadInputError(f"{onnx}: the model has {len(inputs)} inputs; edge feeds models with one image input")
    tensor = inputs[0]
    shape = [d if isinstance(d, int) else None for d in tensor.shape]
    if len(shape) != 4:
        raise BadInputError(f"{onnx}: input '{tensor.name}' has shape {tensor.shape}; expected 4 dimensions")
    layout = options.pop("layout", None) or ("nhwc" if shape[3] == 3 and shape[1] != 3 else "nchw")
    h_axis, w_axis = (2, 3) if layout == "nchw" else (1, 2)
    shape[0] = shape[0] or 1
    shape[1 if layout == "nchw" else 3] = 3
    if input_size is not None:
        fixed = (shape[w_axis], shape[h_axis])
        if any(f is not None and f != given for f, given in zip(fixed, input_size)):
            raise UsageError(f"--input-size {input_size[0]}x{input_size[1]}: the model's input '{tensor.name}' "
                             f"is fixed at {tensor.shape} (layout {layout})")
        shape[w_axis], shape[h_axis] = input_size
    if shape[h_axis] is None or shape[w_axis] is None:
        raise UsageError(f"--input-size: the model's input '{tensor.name}' has dynamic size {tensor.shape}; "
                         f"give it as WxH")
    dtype = "uint8" if tensor.type == "tensor(uint8)" else "float32"
    fields = {"layout": layout, "dtype": options.pop("dtype", None) or dtype}
    fields.update({k: v for k, v in options.items() if v is not None})
    return InputSpec(name=tensor.name, shape=tuple(shape), **fields)


def check_flags(task: str, decoder: str, thresholds: Thresholds, options: Mapping[str, Any]) -> None:
    """The flags that need no model: the decoder's task, thresholds, normalisation, each a usage error naming
    its flag (``bundle.json`` would say the same, later, of a file the user never wrote)."""
    if decoder in DECODERS and DECODERS[decoder].task != task:
        raise UsageError(f"--decoder {decoder}: decodes {DECODERS[decoder].task} outputs, not --task {task}")
    for flag, value in (("--score", thresholds.score), ("--iou", thresholds.iou)):
        if not 0 <= value <= 1:
            raise UsageError(f"{flag}: expected a value from 0 to 1, not {value:g}")
    pad = options.get("pad_value")
    if pad is not None and not 0 <= pad <= 255:
        raise UsageError(f"--pad-value: expected a pixel value from 0 to 255, not {pad:g}")
    for flag, values in (("--mean", options.get("mean")), ("--std", options.get("std"))):
        if values is not None and len(values) not in (1, 3):
            raise UsageError(f"{flag}: expected 1 value or 3 (one per channel, in the model's order), "
                             f"got {len(values)}")
        if values is not None and any(not math.isfinite(v) for v in values):
            raise UsageError(f"{flag}: expected finite numbers, got {','.join(f'{v:g}' for v in values)}")
    if any(v <= 0 for v in options.get("std") or ()):
        raise UsageError("--std: every value must be positive (the model sees (pixel - mean) / std)")


def check_settings(decoder: str, decoder_args: Mapping[str, Any] | None, needs: Mapping[str, Any] | None) -> None:
    """``--decoder-arg`` and ``--needs`` checked against their typed declarations before anything is written: a
    misspelt or mistyped key is a usage error naming the flag (an unknown decoder is left to the bundle check)."""
    sections = [("--needs", Needs, needs)]
    if decoder in DECODERS:
        sections.append(("--decoder-arg", DECODERS[decoder].Args, decoder_args))
    for flag, kind, values in sections:
        try:
            parse(kind, values or {})
        except FieldError as e:
            raise UsageError(f"{flag} {e.field}: {e.problem}" if e.field else f"{flag}: {e.problem}") from None


def create_bundle(onnx: str | Path, out: str | Path, *, task: str, decoder: str, name: str | None = None,
                  labels: str | Path | Sequence[str] | None = None, thresholds: Thresholds | None = None,
                  decoder_args: Mapping[str, Any] | None = None, files: Mapping[str, str | Path] | None = None,
                  needs: Mapping[str, Any] | None = None, input_size: tuple[int, int] | None = None,
                  overwrite: bool = False, **input_options: Any) -> Bundle:
    """Copies ``onnx`` (and any extra ``files``, by role) into ``out`` and writes a validated bundle.

    ``labels`` is a labels file or the labels themselves. A non-empty ``out`` is a usage error unless
    ``overwrite``; the old folder is replaced only once the new bundle is whole."""
    onnx = Path(onnx)
    out = Path(out)
    if not onnx.is_file():
        raise BadInputError(f"{onnx}: no such ONNX file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UsageError(f"--out: {out} already exists and is not empty; give another folder, or --overwrite "
                         f"to replace it")
    thresholds = thresholds or Thresholds()
    check_flags(task, decoder, thresholds, input_options)
    check_settings(decoder, decoder_args, needs)
    label_list = read_labels(labels) if isinstance(labels, (str, Path)) else list(labels or [])
    extra = {role: Path(path) for role, path in (files or {}).items()}
    for role, path in extra.items():
        if not path.is_file():
            raise BadInputError(f"{path}: no such file (given for '{role}')")
    spec = model_input_spec(onnx, input_size=input_size, **input_options)
    make_out_dir(out.parent)
    partial = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        copied = {"model": "model.onnx"}
        shutil.copyfile(onnx, partial / "model.onnx")
        for role, path in extra.items():
            copied[role] = f"{role}{path.suffix}"
            shutil.copyfile(path, partial / copied[role])
        bundle = write_bundle(
            partial, name=name or onnx.stem, task=task, decoder=decoder, input=spec, labels=label_list,
            thresholds=thresholds, files=copied, decoder_args=decoder_args, needs=needs,
            provenance=provenance(str(onnx.resolve()), "edge bundle create", source_sha256=sha256_file(onnx)),
        )
        _open_as_replay(bundle, labels)
        partial.chmod(0o755)  # mkdtemp's folder is owner-only; a service account must read the bundle
        _move_into_place(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return load_bundle(out)


def _open_as_replay(bundle: Bundle, labels: Any) -> None:
    """A bundle that is written is a bundle that runs: open it as replay would. What does not fit the model
    is the user's flag: ``--labels`` for the labels, else ``--decoder`` (and its arguments)."""
    try:
        Runner(bundle, "onnxruntime", threads=1).close()
    except DecoderMismatch as e:
        flag = f"--labels {labels}" if e.about == "labels" and isinstance(labels, (str, Path)) else (
            "--labels" if e.about == "labels" else f"--decoder {bundle.decoder}")
        raise UsageError(f"{flag}: {e.problem}") from None


def _move_into_place(partial: Path, out: Path) -> None:
    """Renames the finished bundle to ``out``; an earlier ``out`` is renamed aside first and removed after."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        partial.replace(out)  # rename(2) replaces an empty folder
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    out.replace(old / out.name)
    partial.replace(out)
    shutil.rmtree(old, ignore_errors=True)

"""``edge bundle create``: wrap an existing ONNX model into a bundle.

The model's own input tensor fills in what the user does not say (name, shape, layout, dtype); the
user says what the model cannot tell (colour order, resize, normalisation, decoder, labels).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.backends.onnxruntime import open_session
from edge.bundle.fields import FieldError, parse
from edge.bundle.io import provenance, sha256_file, write_bundle
from edge.bundle.spec import BUNDLE_FILE, InputSpec, Needs, Thresholds
from edge.decoders import DECODERS
from edge.errors import BadInputError, UsageError
from edge.paths import make_out_dir
from edge.runner import Runner


def read_labels(path: str | Path) -> list[str]:
    """One label per line, in class-index order; trailing blank lines are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInputError(f"{path}: cannot read labels ({e})") from None
    while lines and not lines[-1].strip():
        lines.pop()
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
        shape[w_axis], shape[h_axis] = input_size
    if shape[h_axis] is None or shape[w_axis] is None:
        raise UsageError(f"--input-size: the model's input '{tensor.name}' has dynamic size {tensor.shape}; "
                         f"give it as WxH")
    dtype = "uint8" if tensor.type == "tensor(uint8)" else "float32"
    fields = {"layout": layout, "dtype": options.pop("dtype", None) or dtype}
    fields.update({k: v for k, v in options.items() if v is not None})
    return InputSpec(name=tensor.name, shape=tuple(shape), **fields)


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
                  **input_options: Any):
    """Copies ``onnx`` (and any extra ``files``, by role) into ``out`` and writes a validated bundle.

    ``labels`` is a labels file or the labels themselves."""
    onnx = Path(onnx)
    if not onnx.is_file():
        raise BadInputError(f"{onnx}: no such ONNX file")
    check_settings(decoder, decoder_args, needs)
    spec = model_input_spec(onnx, input_size=input_size, **input_options)
    out = make_out_dir(out)
    copied = {"model": "model.onnx"}
    shutil.copyfile(onnx, out / "model.onnx")
    for role, path in (files or {}).items():
        path = Path(path)
        if not path.is_file():
            raise BadInputError(f"{path}: no such file (given for '{role}')")
        copied[role] = f"{role}{path.suffix}"
        shutil.copyfile(path, out / copied[role])
    bundle = write_bundle(
        out, name=name or onnx.stem, task=task, decoder=decoder, input=spec,
        labels=read_labels(labels) if isinstance(labels, (str, Path)) else list(labels or []),
        thresholds=thresholds or Thresholds(),
        files=copied, decoder_args=decoder_args, needs=needs,
        provenance=provenance(str(onnx.resolve()), "edge bundle create", source_sha256=sha256_file(onnx)),
    )
    try:  # a bundle that is written is a bundle that runs: open it as replay would
        Runner(bundle, "onnxruntime", threads=1).close()
    except BadInputError:
        (out / BUNDLE_FILE).unlink()
        raise
    return bundle

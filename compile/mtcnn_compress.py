"""``edge compile --model mtcnn --prune/--distill``: the cascade with a pruned, distilled O-Net, as an ``mtcnn`` bundle.

O-Net is where the cascade spends its weights (389 k of its 500 k parameters) and runs once per candidate, so
it is the network worth pruning; P-Net (28 k) and R-Net stay as they are. O-Net only ever sees the cascade's
candidates, so it is distilled on those: the original cascade runs on frames sampled from the footage and
:func:`compile.mtcnn.candidate_crops` cuts out what R-Net passes (faces and near-misses). The pruned O-Net is
exported with a dynamic batch (the cascade runs all of a frame's candidates at once) and replaces ``onet`` in
the bundle. The report has O-Net's rows (face / not-face agreement on held-out crops) and the whole cascade's
detections against the original cascade's on held-out frames, as the user will see them.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2

from calibration.agreement import agreement
from calibration.frames import sample_frames, split_holdout
from calibration.measure import candidate_bundle, predictions
from compile.compress import Compressed, compress
from compile.distill import DistillConfig
from compile.families import mtcnn_stage_network
from compile.mtcnn import candidate_crops, compile_mtcnn
from compile.prune import PruneConfig
from edge.bundle import Bundle, write_bundle
from edge.errors import UsageError
from edge.paths import make_out_dir
from edge.progress import say


def compress_mtcnn(checkpoints: dict[str, str | Path] | None, out: Path, *, name: str | None,
                   prune_config: PruneConfig | None, distill_config: DistillConfig | None) -> Compressed:
    """Prunes and/or distils O-Net and writes the cascade's bundle with it to ``out``."""
    if distill_config is None:
        raise UsageError("--prune/--distill of mtcnn: O-Net is distilled on the cascade's candidates; give --distill "
                         "SOURCE (footage with faces)")
    out = make_out_dir(out)
    with tempfile.TemporaryDirectory(prefix="edge-mtcnn-") as folder:
        scratch = Path(folder)
        original = compile_mtcnn("mtcnn", make_out_dir(scratch / "original"), checkpoint=checkpoints, labels=None,
                                 name=name, size=None)
        train, held = split_holdout(sample_frames(list(distill_config.sources), distill_config.frames),
                                    distill_config.holdout)
        crops = _write_crops(original, [f.image for f in train], scratch / "crops")
        say(f"{crops} O-Net candidate crops from {len(train)} frames")
        onet = compress(lambda: mtcnn_stage_network("mtcnn_onet", (checkpoints or {}).get("onet")),
                        scratch / "onet", name="onet", prune_config=prune_config,
                        distill_config=replace(distill_config, sources=(str(scratch / "crops"),), frames=crops))
        changed = _with_onet(original, onet.onnx, scratch / "changed", onet.compile_block)
        block = {**onet.compile_block, "cascade": _cascade_agreement(original, changed, [f.image for f in held])}
        bundle = _with_onet(original, onet.onnx, out, block)
    return replace(onet, onnx=out / "onet.onnx", compile_block=block, bundle=bundle)


def _write_crops(bundle: Bundle, frames: list, folder: Path) -> int:
    folder.mkdir()
    found = candidate_crops(bundle, frames)
    for i, crop in enumerate(found):
        cv2.imwrite(str(folder / f"{i:05d}.png"), crop)
    if not found:
        raise UsageError("--distill: the cascade found no face candidates in the footage to distil O-Net on")
    return len(found)


def _with_onet(original: Bundle, onet: Path, out: Path, block: dict[str, Any]) -> Bundle:
    """The original bundle with ``onet`` as its O-Net, written to ``out``."""
    out = make_out_dir(out)
    for role in ("pnet", "rnet"):
        shutil.copyfile(original.file(role), out / original.files[role])
    shutil.copyfile(onet, out / original.files["onet"])
    return write_bundle(out, name=original.name, task=original.task, decoder=original.decoder, input=original.input,
                        labels=original.labels, thresholds=original.thresholds, files=original.files,
                        decoder_args=original.decoder_args, provenance=original.provenance,
                        extra={**original.extra, "compile": block})


def _cascade_agreement(original: Bundle, changed: Bundle, frames: list) -> dict[str, Any] | None:
    """The changed cascade's detections against the original's on the held-out frames (the gate's metric)."""
    if not frames:
        return None
    found = agreement("detection", predictions(original, frames), predictions(candidate_bundle(changed), frames))
    return {"frames": len(frames), "metric": found.metric, "score": found.score, "interval": [found.low, found.high],
            **found.details}

"""Calibration sets: frames of the user's footage, preprocessed as the bundle's model sees them, cached on disk.

A set has two disjoint parts: the *calibration* tensors, which the quantizer measures activation ranges on,
and the *held-out* frames (BGR, as decoded), which the accuracy gate compares fp32 and int8 on. Both come from
one :func:`calibration.frames.sample_frames` draw split by :func:`calibration.frames.split_holdout`, so they
span the same footage and never share a frame. A few calibration frames are also kept as BGR (*search* frames):
the keep-in-float search measures each layer's effect on them, so that the gate's frames only judge.

Sampling decodes every source twice, which is the slow part; the set is therefore cached as one ``.npz`` under
``$EDGE_CACHE/calibration`` (default ``~/.cache/edge/calibration``), keyed by a hash of the sources (path, size,
mtime of each file), the input spec and the frame counts, so a second quantization of the same footage reuses
it. Live sources (cameras, URLs) are never cached: they give different frames every time.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from calibration.frames import sample_frames, split_holdout, spread_order
from edge.bundle import InputSpec
from edge.errors import BadInputError, UsageError
from edge.preprocess import Preprocessor
from edge.progress import say

CACHE_VERSION = 2  # bump when the cached layout or the sampling changes
SEARCH_FRAMES = 32  # calibration frames also kept as BGR for the keep-in-float search


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed calibration tensors ``[N, ...]`` (input shape without the batch) and BGR held-out frames.

    ``calibration_frames`` and ``holdout_frames`` name each frame as ``(source, index in the source)``;
    ``search`` holds BGR copies of up to :data:`SEARCH_FRAMES` calibration frames spread over the footage.
    """

    tensors: np.ndarray
    holdout: list[np.ndarray]
    calibration_frames: list[tuple[str, int]]
    holdout_frames: list[tuple[str, int]]
    sources: list[str]
    search: list[np.ndarray]

    def batches(self) -> Iterator[np.ndarray]:
        """One batch-of-one input tensor per calibration frame, as the model is fed."""
        for tensor in self.tensors:
            yield tensor[None]

    def describe(self) -> dict:
        return {"sources": self.sources, "calibration_frames": len(self.tensors),
                "holdout_frames": len(self.holdout)}


def cache_folder() -> Path:
    root = os.environ.get("EDGE_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "edge") / "calibration"


def calibration_set(spec: InputSpec, sources: Sequence[str], frames: int, holdout: int,
                    cache: Path | None = None) -> CalibrationSet:
    """``frames`` calibration frames and ``holdout`` held-out frames from ``sources``, from the cache when there.

    Fewer come back when the footage has fewer distinct frames; with no held-out frame at all there is nothing
    to gate on, which is an error.
    """
    if frames < 1 or holdout < 1:
        raise UsageError(f"--calib-frames and --holdout-frames must be at least 1 (got {frames}, {holdout})")
    key = _cache_key(spec, sources, frames, holdout)
    path = (cache or cache_folder()) / f"{key}.npz" if key else None
    if path is not None and path.is_file():
        say(f"calibration set: reusing {path}")
        return _load(path)
    made = _make(spec, sources, frames, holdout)
    if path is not None:
        _save(path, made)
    return made


def _make(spec: InputSpec, sources: Sequence[str], frames: int, holdout: int) -> CalibrationSet:
    say(f"calibration set: sampling {frames + holdout} frames from {len(sources)} source(s)")
    sampled = sample_frames(list(sources), frames + holdout)
    if len(sampled) < 2:
        raise BadInputError(f"--calib: {', '.join(sources)} gave {len(sampled)} distinct frame(s); calibration "
                            f"and the accuracy gate need at least 2")
    used, held = split_holdout(sampled, holdout / (frames + holdout))
    preprocess = Preprocessor(spec)
    tensors = np.empty((len(used), *spec.shape[1:]), spec.dtype)
    for frame, tensor in zip(used, tensors):
        preprocess(frame.image, tensor[None])
    search = [used[i].image for i in np.sort(spread_order(len(used))[:SEARCH_FRAMES])]
    return CalibrationSet(tensors, [f.image for f in held], [(f.source, f.index) for f in used],
                          [(f.source, f.index) for f in held], list(sources), search)


def _cache_key(spec: InputSpec, sources: Sequence[str], frames: int, holdout: int) -> str | None:
    """A hash of everything that changes the set, or ``None`` when a source is live (never cached)."""
    described = []
    for uri in sources:
        files = _files(uri)
        if files is None:
            return None
        described.append([uri, [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]])
    text = json.dumps([CACHE_VERSION, described, asdict(spec), frames, holdout], sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _files(uri: str) -> list[Path] | None:
    """The files a source reads (a file, a folder's files, a glob's matches); ``None`` for a live source."""
    path = Path(uri)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    if glob.has_magic(uri):
        return sorted(Path(p) for p in glob.glob(uri) if Path(p).is_file())
    return None


def _save(path: Path, made: CalibrationSet) -> None:
    """Atomically (temporary file + rename), so an interrupted run never leaves half a cache behind."""
    meta = {"calibration_frames": made.calibration_frames, "holdout_frames": made.holdout_frames,
            "sources": made.sources}
    buffer = io.BytesIO()
    np.savez(buffer, tensors=made.tensors, meta=np.array(json.dumps(meta)),
             **{f"holdout_{i}": image for i, image in enumerate(made.holdout)},
             **{f"search_{i}": image for i, image in enumerate(made.search)})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".calibration-", suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getbuffer())
    os.replace(tmp, path)


def _load(path: Path) -> CalibrationSet:
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        holdout = [data[f"holdout_{i}"] for i in range(len(meta["holdout_frames"]))]
        search = [data[name] for name in sorted((n for n in data.files if n.startswith("search_")),
                                                key=lambda n: int(n.split("_")[1]))]
        return CalibrationSet(data["tensors"], holdout, [tuple(f) for f in meta["calibration_frames"]],
                              [tuple(f) for f in meta["holdout_frames"]], meta["sources"], search)



"""What identifies a run in its ``summary.json``: which edge, when, where, on what, with which bundles and
sources, so that two summaries can be compared (or a regression traced) without the run's command line.

Bundles are named with the sha256 of their ``bundle.json``, which holds every model file's own sha256 and the
thresholds, so one hash says "the same bundle"; the run's thresholds (after ``--score`` & co.) are listed
beside it. The GPU is asked for (through ctypes, :mod:`edge.cuda_info`) only when a TensorRT backend runs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from edge import __version__, cuda_info, jetson
from edge.bundle import BUNDLE_FILE, Bundle
from edge.pipeline import Pipeline


def bundle_identity(bundle: Bundle) -> dict[str, Any]:
    """A bundle's name-independent identity: ``bundle.json``'s sha256 and its model files' sha256."""
    text = (bundle.root / BUNDLE_FILE).read_bytes()
    files = json.loads(text).get("files", {})
    return {"sha256": hashlib.sha256(text).hexdigest(), "path": str(bundle.root), "task": bundle.task,
            "decoder": bundle.decoder, "files": {role: entry["sha256"] for role, entry in files.items()},
            "thresholds": bundle.thresholds.to_json()}


def started_at(pipeline: Pipeline) -> str:
    """The wall-clock time the pipeline started, ISO 8601 in UTC."""
    started = time.time() - (time.monotonic() - pipeline.started)
    return datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds")


def gpus(backends: str) -> list[str]:
    """The GPUs CUDA lists, where a TensorRT backend runs (else none: the run did not use one)."""
    if "tensorrt" not in backends:
        return []
    return [f"{g.name} (compute capability {g.compute_capability})" for g in cuda_info.probe().gpus]


def run_identity(pipeline: Pipeline, bundles: Sequence[Bundle], uris: Sequence[str]) -> dict[str, Any]:
    """The ``run`` block of ``summary.json``."""
    backends = pipeline.workers[0].backend_names
    sources = {}
    for stats, uri in zip(pipeline.stats.streams, uris):
        feed = stats.feed
        width, height = stats.size or (None, None)
        length = feed.length
        sources[feed.name] = {"uri": uri, "width": width, "height": height, "fps": round(feed.fps, 3),
                              "length": length,
                              "duration_s": round(length / feed.fps, 3) if length and feed.fps else None}
    return {"edge_version": __version__, "started": started_at(pipeline), "host": socket.gethostname(),
            "platform": f"{platform.system()} {platform.machine()}", "python": platform.python_version(),
            "jetson": jetson.model_name() or None, "backend": backends, "precision": pipeline.workers[0].precisions,
            "gpus": gpus(backends), "workers": len(pipeline.workers),
            "bundles": {b.name: bundle_identity(b) for b in bundles}, "sources": sources}

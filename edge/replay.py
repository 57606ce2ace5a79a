"""``edge replay``: recorded footage through one or more bundles, every frame once, in order.

It is the daemon's pipeline (:mod:`edge.pipeline`) with one lossless source: frames are decoded ahead,
inferred by parallel workers and put back in order before the sinks, so nothing is dropped or reordered.
Each frame is decoded once, whatever the number of bundles (``decoded_frames`` in the summary), and the
summary gives each bundle's own stage latencies and the rate it would sustain alone (``per_bundle``).
Whatever happens, the sinks are closed and ``summary.json`` is written, so a run that fails half-way
keeps everything it produced: complete event lines, a playable video of the frames processed so far.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.bundle import load_bundle
from edge.outputs import EventsSink, LabelCounter, MapsSink, VideoSink
from edge.paths import make_out_dir
from edge.pipeline import Pipeline, make_workers
from streams.feed import DecodeMode, SourceSpec


def replay(source: str, bundle_dirs: Sequence[str | Path], out: str | Path, *, backend: str = "auto",
           video: bool = True, realtime: bool = False, threads: int | None = None, workers: int | None = None,
           decode: DecodeMode | None = None, track: bool = False, allow_build: bool = True,
           save_masks: bool = False) -> dict[str, Any]:
    """Runs the replay and returns the summary (also written to ``out/summary.json``). ``allow_build=False``
    forbids building a TensorRT engine at load (see :func:`edge.backends.open_backend`). With ``save_masks``
    every frame's class, instance and panoptic id maps go to ``out/<kind>/<bundle>/<frame>.png``."""
    models = make_workers([load_bundle(d) for d in bundle_dirs], backend, threads, workers, allow_build=allow_build)
    out = make_out_dir(out)
    labels = LabelCounter()
    sinks = [EventsSink(out / "events.jsonl"), labels]
    if video:
        sinks.append(VideoSink(out, several_streams=False))
    if save_masks:
        sinks.append(MapsSink(out, several_streams=False))
    pipeline = Pipeline([SourceSpec(source, realtime=realtime)], models, sinks, track=track,
                        **({"decode": decode} if decode else {}))
    error: BaseException | None = None
    try:
        pipeline.run()
        failures = pipeline.source_errors()
        if failures:
            raise failures[0]
    except BaseException as e:
        error = e
        raise
    finally:
        try:
            pipeline.close_sinks()
        finally:
            for model_set in models:
                model_set.close()
            summary = pipeline.summary()
            del summary["streams"]
            summary.update(source=str(source), bundles=[m.name for m in models[0].models],
                           labels=dict(labels.counts.most_common()))
            if error is not None:
                summary["error"] = str(error) or type(error).__name__
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

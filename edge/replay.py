"""``edge replay``: recorded footage through one or more bundles, every frame once, in order.

source → (decode-ahead thread) → model(s): preprocess → infer → postprocess → sinks (events, video).
Whatever happens, the sinks are closed and ``summary.json`` is written, so a run that fails half-way
keeps everything it produced: complete event lines, a playable video of the frames processed so far.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import UsageError
from edge.metrics import StageTimes
from edge.model import ModelSet
from edge.results import Detections
from streams.pacing import RealtimePacer
from streams.prefetch import Prefetcher
from streams.sinks import EventLog, VideoFileWriter
from streams.sources import open_source


def count_labels(models: ModelSet, results: dict[str, Any]) -> list[str]:
    """Labels of this frame's detections, for the summary's per-label totals."""
    labels = []
    for model in models.models:
        result = results[model.name]
        if isinstance(result, Detections):
            labels.extend(model.bundle.label(c) for c in result.class_ids.tolist())
    return labels


def make_out_dir(out: str | Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {out} ({e.strerror})") from None
    return out


def replay(source: str, bundle_dirs: Sequence[str | Path], out: str | Path, *, backend: str = "auto",
           video: bool = True, realtime: bool = False, threads: int | None = None,
           allow_build: bool = True) -> dict[str, Any]:
    """Runs the replay and returns the summary (also written to ``out/summary.json``)."""
    models = ModelSet.load(bundle_dirs, backend, threads, allow_build=allow_build)
    out = make_out_dir(out)
    frames_source = open_source(source)
    times = StageTimes()
    labels: Counter[str] = Counter()
    pacer = RealtimePacer() if realtime else None
    started = time.perf_counter()
    processed, error = 0, None
    events = EventLog(out / "events.jsonl")
    writer = VideoFileWriter(out / "annotated.mp4", frames_source.fps) if video else None
    prefetch = Prefetcher(frames_source)
    try:
        for frame in prefetch:
            if pacer is not None:
                pacer.wait(frame.pts)
            results = models(frame.image)
            events.write({"stream": frame.stream, "frame": frame.index, "pts": round(frame.pts, 6),
                          "results": models.to_events(results)})
            if writer is not None:
                models.draw(frame.image, results)
                writer.write(frame.image)
            processed += 1
            labels.update(count_labels(models, results))
            times.add("decode", frame.decode_s)
            for stage, seconds in models.timings.items():
                times.add(stage, seconds)
            times.add("end_to_end", time.monotonic() - frame.captured)
    except BaseException as e:
        error = e
        raise
    finally:
        prefetch.close()
        frames_source.close()
        events.close()
        if writer is not None:
            writer.close()
        models.close()
        wall = time.perf_counter() - started
        summary = {
            "frames": processed,
            "dropped": 0,
            "wall_s": round(wall, 3),
            "fps": round(processed / wall, 2) if wall > 0 else 0.0,
            "backend": models.backend_names,
            "precision": models.precisions,
            "latency_ms": times.summary(),
            "source": str(source),
            "bundles": [m.name for m in models.models],
            "labels": dict(labels.most_common()),
        }
        if error is not None:
            summary["error"] = str(error) or type(error).__name__
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

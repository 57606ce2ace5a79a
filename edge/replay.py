"""``edge replay``: recorded footage through one or more bundles, every frame once, in order.

source → (decode-ahead thread) → model(s): preprocess → infer → postprocess → sinks (events, video, masks).
Each frame is decoded once, whatever the number of bundles (``decoded_frames`` in the summary), and the
summary gives each bundle's own stage latencies and the rate it would sustain alone (``per_bundle``).
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
from streams.sinks import EventLog, ImageFolderWriter, VideoFileWriter
from streams.sources import open_source


def count_labels(models: ModelSet, results: dict[str, Any]) -> list[str]:
    """Labels of this frame's detections, for the summary's per-label totals."""
    labels = []
    for model in models.models:
        result = results[model.name]
        if isinstance(result, Detections):
            labels.extend(model.bundle.label(c) for c in result.class_ids.tolist())
    return labels


def _bundle_summary(times: StageTimes) -> dict[str, Any]:
    """One bundle's stage latencies and the frame rate it would sustain alone (its stages only, no decode)."""
    total = times.stages.get("total")
    fps = round(total.count / total.total_s, 2) if total is not None and total.total_s > 0 else 0.0
    return {"fps": fps, "latency_ms": times.summary()}


def make_out_dir(out: str | Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {out} ({e.strerror})") from None
    return out


def replay(source: str, bundle_dirs: Sequence[str | Path], out: str | Path, *, backend: str = "auto",
           video: bool = True, realtime: bool = False, threads: int | None = None,
           save_masks: bool = False) -> dict[str, Any]:
    """Runs the replay and returns the summary (also written to ``out/summary.json``). With ``save_masks``
    every frame's class, instance and panoptic id maps go to ``out/<kind>/<bundle>/<frame>.png``."""
    models = ModelSet.load(bundle_dirs, backend, threads)
    out = make_out_dir(out)
    frames_source = open_source(source)
    times = StageTimes()
    per_bundle = {m.name: StageTimes() for m in models.models}
    labels: Counter[str] = Counter()
    pacer = RealtimePacer() if realtime else None
    started = time.perf_counter()
    processed, error = 0, None
    events = EventLog(out / "events.jsonl")
    writer = VideoFileWriter(out / "annotated.mp4", frames_source.fps) if video else None
    maps = ImageFolderWriter(out) if save_masks else None
    prefetch = Prefetcher(frames_source)
    try:
        for frame in prefetch:
            if pacer is not None:
                pacer.wait(frame.pts)
            results = models(frame.image)
            events.write({"stream": frame.stream, "frame": frame.index, "pts": round(frame.pts, 6),
                          "results": models.to_events(results)})
            if maps is not None:
                for bundle, images in models.maps(results).items():
                    for kind, image in images.items():
                        maps.write(f"{kind}/{bundle}/{frame.index:06d}.png", image)
            if writer is not None:
                models.draw(frame.image, results)
                writer.write(frame.image)
            processed += 1
            labels.update(count_labels(models, results))
            times.add("decode", frame.decode_s)
            for stage, seconds in models.timings.items():
                times.add(stage, seconds)
            for name, stages in models.timings_by_model.items():
                for stage, seconds in stages.items():
                    per_bundle[name].add(stage, seconds)
                per_bundle[name].add("total", sum(stages.values()))
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
            "decoded_frames": frames_source.decoded,
            "dropped": 0,
            "wall_s": round(wall, 3),
            "fps": round(processed / wall, 2) if wall > 0 else 0.0,
            "backend": models.backend_names,
            "precision": models.precisions,
            "latency_ms": times.summary(),
            "source": str(source),
            "bundles": [m.name for m in models.models],
            "per_bundle": {name: _bundle_summary(stages) for name, stages in per_bundle.items()},
            "labels": dict(labels.most_common()),
        }
        if error is not None:
            summary["error"] = str(error) or type(error).__name__
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

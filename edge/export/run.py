"""``edge export EVENTS --format coco|mot|csv [--out FILE]``: one format, one file, written whole (to a
temporary file renamed over ``--out``), so a reader never sees half an export."""

from __future__ import annotations

import io
import json
from pathlib import Path

from edge.errors import UsageError
from edge.export.coco import coco_results
from edge.export.events import choose, detections
from edge.export.tables import write_csv, write_mot
from edge.files import write_atomic

FORMATS = {"coco": ".coco.json", "mot": ".mot.txt", "csv": ".csv"}  # format → default file suffix


def default_out(events: Path, kind: str) -> Path:
    """``events.jsonl`` → ``events.coco.json`` (``.mot.txt``, ``.csv``) beside it."""
    return events.with_name(events.name.removesuffix(".jsonl") + FORMATS[kind])


def export(events: str | Path, kind: str, out: str | Path | None = None, *, bundle: str | None = None,
           stream: str | None = None) -> tuple[Path, str]:
    """Writes the export and returns its path and one line saying what it holds."""
    events = Path(events)
    if kind not in FORMATS:
        raise UsageError(f"--format: '{kind}' is not one of {', '.join(FORMATS)}")
    # COCO image ids and MOT frames are frame numbers: one stream per file.
    bundle, stream = choose(events, bundle, stream, one_stream=kind in ("coco", "mot"))
    found = detections(events, bundle, stream)
    text = io.StringIO()
    if kind == "coco":
        results, official = coco_results(list(found))
        json.dump(results, text)
        ids = "COCO's 91 category ids" if official else "the bundle's class ids (its labels are not COCO's)"
        what = f"{len(results)} detections of {bundle}, image_id = frame, category_id = {ids}"
    elif kind == "mot":
        rows = write_mot(found, text)
        what = f"{rows} MOT rows of {bundle} (frames 1-based)"
    else:
        rows = write_csv(found, text)
        what = f"{rows} rows of {bundle}"
    path = Path(out) if out is not None else default_out(events, kind)
    try:
        write_atomic(path, text.getvalue())
    except OSError as e:
        raise UsageError(f"--out: cannot write {path} ({e.strerror})") from None
    return path, f"{what}{f' of stream {stream}' if stream else ''}"

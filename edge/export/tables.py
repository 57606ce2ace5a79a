"""Row formats: MOT Challenge and CSV, written row by row as the events are read.

MOT Challenge (MOT15–MOT20, TrackEval): ``frame, id, bb_left, bb_top, bb_width, bb_height, conf, x, y, z`` with
1-based frames and -1 for the 3-D position. With tracking, rows are the tracked detections (a detection the
tracker has not confirmed, ``track_id`` -1, is left out as it belongs to no trajectory); without tracking every
detection is a row with id -1, as MOT's own detection files are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from edge.export.events import Detection

CSV_COLUMNS = ("stream", "frame", "pts", "time", "width", "height", "label", "class_id", "score", "x1", "y1", "x2",
               "y2", "track_id")


def write_mot(found: Iterable[Detection], out: TextIO) -> int:
    """MOT rows of ``found``; returns how many."""
    rows = 0
    for d in found:
        if d.track_id is not None and d.track_id < 0:
            continue
        x1, y1, x2, y2 = d.box
        track = -1 if d.track_id is None else d.track_id
        out.write(f"{d.frame + 1},{track},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{d.score:.4f},-1,-1,-1\n")
        rows += 1
    return rows


def write_csv(found: Iterable[Detection], out: TextIO) -> int:
    """One CSV row per detection under a header of :data:`CSV_COLUMNS`; returns how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for d in found:
        width, height = d.size or ("", "")
        writer.writerow((d.stream, d.frame, d.pts, "" if d.time is None else d.time, width, height, d.label,
                         d.class_id, d.score, *d.box, "" if d.track_id is None else d.track_id))
        rows += 1
    return rows

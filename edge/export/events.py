"""Reading ``events.jsonl`` for the exports: line by line (a daemon's file may hold days), each bad line one
error naming the file and the line, and the detections of one bundle as flat rows.

Which bundle: the one given, else the only bundle whose results hold ``detections`` (a detector, Mask R-CNN,
a classifier run on a detector's boxes); a file with several is a usage error that names them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from edge.errors import BadInputError, UsageError


class Detection(NamedTuple):
    """One detection of one event: where (stream, frame, time), what, and its box in frame pixels."""

    stream: str
    frame: int  # 0-based, as the event's
    pts: float
    time: float | None  # wall-clock capture time (Unix seconds), where the event has it
    size: tuple[int, int] | None  # frame width, height, where the event has it
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    track_id: int | None


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """Each event of ``path``; a line that is not an event is a :class:`BadInputError` naming it."""
    path = Path(path)
    try:
        lines = path.open(encoding="utf-8")
    except OSError as e:
        raise BadInputError(f"{path}: cannot read the events ({e.strerror})") from None
    with lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{path}:{number}: not a JSON event line ({e.msg})") from None
            if not isinstance(event, dict) or not {"stream", "frame", "results"} <= set(event):
                raise BadInputError(f"{path}:{number}: not an event (needs stream, frame and results)")
            yield event


def detection_bundles(path: str | Path) -> tuple[list[str], list[str]]:
    """The bundles whose results hold detections and the streams, in the order the file first names them."""
    bundles: dict[str, None] = {}
    streams: dict[str, None] = {}
    for event in read_events(path):
        streams[event["stream"]] = None
        for name, result in event["results"].items():
            if isinstance(result, dict) and "detections" in result:
                bundles[name] = None
    return list(bundles), list(streams)


def choose(path: str | Path, bundle: str | None, stream: str | None, one_stream: bool) -> tuple[str, str | None]:
    """The bundle to export (``bundle`` checked, else the only one) and the stream (``stream`` checked, else
    every stream, or the only one when the format holds ``one_stream``)."""
    bundles, streams = detection_bundles(path)
    if not bundles:
        raise BadInputError(f"{path}: no detections to export (no bundle's results hold 'detections')")
    if bundle is None:
        if len(bundles) > 1:
            raise UsageError(f"--bundle: {path} holds the detections of {', '.join(bundles)}; name one")
        bundle = bundles[0]
    elif bundle not in bundles:
        raise UsageError(f"--bundle: no detections of '{bundle}' in {path} (bundles: {', '.join(bundles)})")
    if stream is not None and stream not in streams:
        raise UsageError(f"--stream: no stream '{stream}' in {path} (streams: {', '.join(streams)})")
    if stream is None and one_stream and len(streams) > 1:
        raise UsageError(f"--stream: {path} holds streams {', '.join(streams)}; this format takes one, name it")
    return bundle, stream if stream is not None else (streams[0] if one_stream else None)


def detections(path: str | Path, bundle: str, stream: str | None = None) -> Iterator[Detection]:
    """Every detection of ``bundle`` (of ``stream``, or every stream), in file order."""
    for event in read_events(path):
        if stream is not None and event["stream"] != stream:
            continue
        result = event["results"].get(bundle)
        if not result:
            continue
        size = tuple(event["size"]) if "size" in event else None
        for d in result.get("detections", ()):
            yield Detection(event["stream"], event["frame"], event.get("pts", 0.0), event.get("time"), size,
                            d["label"], d["class_id"], d["score"], tuple(d["box"]), d.get("track_id"))

"""One run of the pipeline from a :class:`~edge.config.RunConfig`, as ``edge replay`` and ``edge run`` both
make it: the inference workers, the output folder, the sinks the options ask for, the pipeline, the stop
signals; and one way to close it all.

Closing always closes the sinks (finalising video files, flushing events) and the workers, even after a
failure, and writes ``summary.json`` last and atomically (with the detections counted per label, or the
distinct tracks when tracking is on, and the ``run`` block that identifies it: :mod:`edge.identity`), so a run
that fails half-way keeps everything it produced, and a summary is either whole or absent.

SIGINT (Ctrl-C) and SIGTERM stop reading (:class:`SignalStop`): the frames in flight are finished, the files
closed and the summary written; a second signal while that drains is ignored rather than cutting it short.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from edge.analytics.recorder import MediaSink
from edge.analytics.settings import AnalyticsSettings
from edge.analytics.stage import AnalyticsStage, load_analytics
from edge.bundle import Bundle, load_bundle
from edge.config import RunConfig, flag_of
from edge.errors import UsageError
from edge.files import write_json_atomic
from edge.filters import apply_filters
from edge.graph import make_workers
from edge.identity import run_identity
from edge.paths import make_out_dir
from edge.pipeline import Pipeline, Sink
from edge.pipeline.sinks import EventsSink, LabelCounter, MapsSink, VideoSink
from edge.schedule import InferenceSchedule, MotionGate
from streams.base import WriterError
from streams.feed import Backoff, SourceSpec
from streams.uris import stream_name

log = logging.getLogger("edge.session")

# What a run writes into its --out folder (files and folders, as glob patterns).
RUN_OUTPUTS = ("events.jsonl", "events.jsonl.*", "annotated.mp4", "annotated-*.mp4", "summary.json", "masks",
               "panoptic", "snapshots", "clips")


class EarlierRun(str, Enum):
    """What a run does with an earlier run's outputs in its ``--out``."""

    REFUSE = "refuse"  # replay: a usage error, nothing is touched
    REPLACE = "replace"  # replay --overwrite: the earlier outputs are removed first, so none is left stale
    KEEP = "keep"  # the daemon, restarted: events are appended, earlier videos are renamed aside


def earlier_outputs(out: Path) -> list[Path]:
    return sorted({p for pattern in RUN_OUTPUTS for p in out.glob(pattern)})


def prepare_out(out: Path, earlier: EarlierRun) -> None:
    """Applies ``earlier`` to what an earlier run left in ``out``."""
    found = earlier_outputs(out)
    if not found:
        return
    if earlier is EarlierRun.REFUSE:
        raise UsageError(f"--out: {out} holds an earlier run ({', '.join(p.name for p in found[:3])}); give "
                         f"another folder, or --overwrite to replace it")
    if earlier is EarlierRun.REPLACE:
        for path in found:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for video in (p for p in found if p.suffix == ".mp4"):
        video.rename(video.with_name(f"{video.stem}.{stamp}{video.suffix}"))


class SignalStop:
    """SIGINT and SIGTERM stop the pipeline instead of killing the process; ``signal`` is the first received.
    Installed only from the main thread (Python delivers signals there); the previous handlers come back on
    :meth:`restore`."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.pipeline: Pipeline | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(self, number: int, _frame: object) -> None:
        if self.signal is None:
            self.signal = signal.Signals(number)
            log.info("stopping", extra={"signal": self.signal.name})
        if self.pipeline is not None:
            self.pipeline.stop()

    def watch(self, pipeline: Pipeline) -> None:
        """Stops ``pipeline`` on a signal, at once if one came while it was being made."""
        self.pipeline = pipeline
        if self.signal is not None:
            pipeline.stop()

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


class RunSession:
    """Opens the workers (bundles first: a bad bundle fails before anything is written), then ``out`` and the
    sinks. ``out`` is ``config.out``, else ``default_out``; ``earlier`` says what to do with an earlier run's
    outputs there. Subclasses add sinks with :meth:`more_sinks` and rotate the events with
    :meth:`events_rotation`."""

    def __init__(self, config: RunConfig, specs: Sequence[SourceSpec], default_out: str, *,
                 backoff: Backoff | None = None, earlier: EarlierRun = EarlierRun.REFUSE):
        self.config = config
        self.specs = list(specs)
        self.earlier = earlier
        self.stop_signal = SignalStop()
        try:
            self.bundles = apply_filters([load_bundle(b) for b in config.bundles], config)
            if config.motion_crop and not config.motion:
                raise UsageError(f"{flag_of('motion_crop')}: crops to what moves, so needs {flag_of('motion')}")
            gate = MotionGate(config.motion_area, crop=config.motion_crop) if config.motion else None
            schedule = InferenceSchedule(self.bundles, config.interval, gate)
            self.analytics = self._analytics(self.bundles)
            self.workers = make_workers(self.bundles, config.backend, config.threads,
                                        config.workers, batch=config.batch or len(self.specs),
                                        allow_build=config.engine_build)
        except BaseException:
            self.stop_signal.restore()
            raise
        try:
            self.out = make_out_dir(config.out or default_out)
            prepare_out(self.out, earlier)
            self.pipeline = Pipeline(self.specs, self.workers, self._sinks(), decode=config.decode,
                                     track=config.tracking, backoff=backoff, schedule=schedule,
                                     analytics=self.analytics)
            self.stop_signal.watch(self.pipeline)
        except BaseException:
            self._close_workers()
            self.stop_signal.restore()
            raise

    def _analytics(self, bundles: Sequence[Bundle]) -> AnalyticsStage | None:
        """The zones and lines of ``--analytics FILE`` (or the config's inline ones), checked against this run's
        streams and bundles."""
        given = self.config.analytics
        if given is None:
            return None
        if not self.config.tracking and any(b.task == "detection" for b in bundles):
            raise UsageError(f"{flag_of('analytics')}: zones and lines follow tracked detections; "
                             f"drop {flag_of('tracking').replace('--', '--no-')}")
        names = [spec.name or stream_name(spec.uri) for spec in self.specs]
        if isinstance(given, AnalyticsSettings):
            return AnalyticsStage(given, names, bundles, "analytics")
        return AnalyticsStage(load_analytics(given), names, bundles, given)

    def _sinks(self) -> list[Sink]:
        """The files first and the events after them, so a frame has its event line only once every file
        holds it: a run that a failing file ends has as many event lines as frames counted in its summary."""
        several = len(self.specs) > 1
        self.labels = LabelCounter()
        sinks: list[Sink] = []
        if self.config.video:
            sinks.append(VideoSink(self.out, several_streams=several))
        if self.config.save_masks:
            sinks.append(MapsSink(self.out, several_streams=several))
        if self.analytics is not None and (self.analytics.settings.snapshots or self.analytics.settings.clips):
            sinks.append(MediaSink(self.out, self.analytics.settings))
        events = EventsSink(self.out / "events.jsonl", *self.events_rotation(), append=self.earlier is EarlierRun.KEEP)
        return [*sinks, events, self.labels, *self.more_sinks()]

    def events_rotation(self) -> tuple[int | None, int]:
        """``events.jsonl``'s size limit in bytes (``None``: never rotated) and how many old files to keep."""
        return None, 0

    def more_sinks(self) -> list[Sink]:
        return []

    def _labels(self) -> dict[str, Any]:
        """``labels``: distinct tracks per label when tracking is on, else detections per label (every
        frame's); ``detections_per_label`` is always the latter."""
        detections = dict(self.labels.counts.most_common())
        tracked = self.config.tracking
        return {"labels": dict(self.labels.tracks.most_common()) if tracked else detections,
                "labels_counted": "tracks" if tracked else "detections", "detections_per_label": detections}

    def _close_workers(self) -> None:
        for graph in self.workers:
            graph.close()

    def close(self, **extra: Any) -> dict[str, Any]:
        """Closes the sinks and the workers (even if one fails), then writes the pipeline's summary with
        ``extra`` added to ``summary.json`` (atomically) and returns it. Raises the first failure."""
        self.stop_signal.restore()
        failures: list[BaseException] = []
        for step in (self.pipeline.close_sinks, self._close_workers):
            try:
                step()
            except Exception as e:
                failures.append(e)
        summary = {**self.pipeline.summary(), **self._labels(), **extra,
                   "run": run_identity(self.pipeline, self.bundles, [s.uri for s in self.specs])}
        if self.stop_signal.signal is not None:
            summary["stopped_by"] = self.stop_signal.signal.name
        path = Path(self.out) / "summary.json"
        try:
            write_json_atomic(path, summary)
        except OSError as e:
            failures.append(WriterError(f"{path}: cannot write ({e.strerror})"))
        if failures:
            raise failures[0]
        return summary

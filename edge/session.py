"""One run of the pipeline from a :class:`~edge.config.RunConfig`, as ``edge replay`` and ``edge run`` both
make it: the inference workers, the output folder, the sinks the options ask for, the pipeline; and one way
to close it all.

Closing always closes the sinks (finalising video files, flushing events) and the workers, even after a
failure, and writes ``summary.json`` last (with the detections counted per label), so a run that fails
half-way keeps everything it produced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.analytics.recorder import MediaSink
from edge.analytics.settings import AnalyticsSettings
from edge.analytics.stage import AnalyticsStage, load_analytics
from edge.bundle import Bundle, load_bundle
from edge.config import RunConfig, flag_of
from edge.errors import UsageError
from edge.graph import make_workers
from edge.paths import make_out_dir
from edge.pipeline import Pipeline, Sink
from edge.pipeline.sinks import EventsSink, LabelCounter, MapsSink, VideoSink
from edge.schedule import InferenceSchedule, MotionGate
from streams.feed import Backoff, SourceSpec
from streams.uris import stream_name


class RunSession:
    """Opens the workers (bundles first: a bad bundle fails before anything is written), then ``out`` and the
    sinks. ``out`` is ``config.out``, else ``default_out``. Subclasses add sinks with :meth:`more_sinks` and
    rotate the events with :meth:`events_rotation`."""

    def __init__(self, config: RunConfig, specs: Sequence[SourceSpec], default_out: str, *,
                 backoff: Backoff | None = None):
        self.config = config
        self.specs = list(specs)
        bundles = [load_bundle(b) for b in config.bundles]
        if config.motion_crop and not config.motion:
            raise UsageError(f"{flag_of('motion_crop')}: crops to what moves, so needs {flag_of('motion')}")
        gate = MotionGate(config.motion_area, crop=config.motion_crop) if config.motion else None
        schedule = InferenceSchedule(bundles, config.interval, gate)
        self.analytics = self._analytics(bundles)
        self.workers = make_workers(bundles, config.backend, config.threads, config.workers,
                                    batch=config.batch or len(self.specs), allow_build=config.engine_build)
        try:
            self.out = make_out_dir(config.out or default_out)
            self.pipeline = Pipeline(self.specs, self.workers, self._sinks(), decode=config.decode,
                                     track=config.tracking, backoff=backoff, schedule=schedule,
                                     analytics=self.analytics)
        except BaseException:
            self._close_workers()
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
        several = len(self.specs) > 1
        self.labels = LabelCounter()
        sinks: list[Sink] = [EventsSink(self.out / "events.jsonl", *self.events_rotation()), self.labels]
        if self.config.video:
            sinks.append(VideoSink(self.out, several_streams=several))
        if self.config.save_masks:
            sinks.append(MapsSink(self.out, several_streams=several))
        if self.analytics is not None and (self.analytics.settings.snapshots or self.analytics.settings.clips):
            sinks.append(MediaSink(self.out, self.analytics.settings))
        return sinks + self.more_sinks()

    def events_rotation(self) -> tuple[int | None, int]:
        """``events.jsonl``'s size limit in bytes (``None``: never rotated) and how many old files to keep."""
        return None, 0

    def more_sinks(self) -> list[Sink]:
        return []

    def _close_workers(self) -> None:
        for graph in self.workers:
            graph.close()

    def close(self, **extra: Any) -> dict[str, Any]:
        """Closes the sinks and the workers (even if one fails), then writes the pipeline's summary with
        ``extra`` added to ``summary.json`` and returns it."""
        try:
            self.pipeline.close_sinks()
        finally:
            self._close_workers()
            summary = {**self.pipeline.summary(), "labels": dict(self.labels.counts.most_common()), **extra}
            (Path(self.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

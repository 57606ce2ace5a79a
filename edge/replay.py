"""``edge replay``: recorded footage through one or more bundles, every frame once, in order.

It is the daemon's pipeline (:mod:`edge.pipeline`) with one lossless source: frames are decoded ahead,
inferred by parallel workers and put back in order before the sinks, so nothing is dropped or reordered.
Each frame is decoded once, whatever the number of bundles (``decoded_frames`` in the summary), and the
summary gives each bundle's own stage latencies and the rate it would sustain alone (``per_bundle``).
Whatever happens, the sinks are closed and ``summary.json`` is written (:class:`edge.session.RunSession`),
so a run that fails half-way keeps everything it produced: complete event lines, a playable video of the
frames processed so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge import progress
from edge.config import RunConfig
from edge.errors import Interrupted
from edge.pipeline import Sink
from edge.pipeline.sinks import ProgressSink
from edge.session import EarlierRun, RunSession
from streams.feed import SourceSpec

DEFAULT_OUT = "out/replay"


class ReplaySession(RunSession):
    """The run session of ``edge replay``: on a terminal, a progress bar (frames, fps, ETA) on stderr."""

    def more_sinks(self) -> list[Sink]:
        bar = progress.frames(None, Path(self.specs[0].uri).name)
        if bar.disable:
            return []
        return [ProgressSink(bar, lambda: self.pipeline.feeds[0].length)]


def replay(source: str, config: RunConfig, *, realtime: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Runs the replay of ``source`` (``realtime``: paced at the file's own rate) and returns the summary, also
    written to ``OUT/summary.json``; the summary adds ``source``, ``bundles`` and, if the run failed, ``error``.
    An earlier run's outputs in ``OUT`` are a usage error, or removed first with ``overwrite``. Stopped by
    SIGINT or SIGTERM, it finishes what is in flight, writes everything, then raises :class:`Interrupted`."""
    earlier = EarlierRun.REPLACE if overwrite else EarlierRun.REFUSE
    session = ReplaySession(config, [SourceSpec(source, realtime=realtime)], DEFAULT_OUT, earlier=earlier)
    error: BaseException | None = None
    try:
        session.pipeline.run()
        failures = session.pipeline.source_errors()
        if failures:
            raise failures[0]
    except BaseException as e:
        error = e
    failed = {"error": str(error) or type(error).__name__} if error is not None else {}
    try:
        summary = session.close(source=str(source), bundles=list(session.pipeline.labels), **failed)
    except BaseException:
        if error is None:
            raise
    if error is not None:
        raise error  # the first failure, not one closing met after it
    if session.stop_signal.signal is not None:
        raise Interrupted(session.stop_signal.signal, f"{summary['frames']} frames written to {session.out}")
    return summary

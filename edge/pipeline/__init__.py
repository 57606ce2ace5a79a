"""The one pipeline under both ``edge replay`` and ``edge run``: sources → inference → tracking → sinks.

``core`` schedules (feeds, frame queue, inference workers, reorder, dispatch), ``messages`` names what
travels between its threads, ``stats`` keeps its counters, ``sinks`` holds the outputs and the
:class:`~edge.pipeline.sinks.SinkSet` that isolates their failures.
"""

from edge.pipeline.core import Pipeline
from edge.pipeline.messages import FrameResult
from edge.pipeline.sinks import Sink, SinkSet

__all__ = ["FrameResult", "Pipeline", "Sink", "SinkSet"]

"""Frame sources and sinks. Independent of ``edge``: streams know nothing about models."""

from streams.sources import Frame, Source, SourceError, open_source

__all__ = ["Frame", "Source", "SourceError", "open_source"]

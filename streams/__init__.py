"""Frame sources, their feeds and queues, and the writers and servers results go to. Independent of ``edge``:
streams know nothing about models."""

from streams.base import Frame, Source, SourceError
from streams.sources import open_source

__all__ = ["Frame", "Source", "SourceError", "open_source"]

"""Structured logs for the daemon: one JSON object per line on stderr, which journald stores as is and
log shippers parse without patterns. Context travels in ``extra={...}`` and becomes top-level keys."""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {"ts": round(record.created, 3),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                    "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        document.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the stream it was made with: a
    command run in-process (tests, embedding) may replace and close stderr after configuring the logs."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(debug: bool = False) -> None:
    """Routes the ``edge`` and ``streams`` loggers to stderr as JSON lines (INFO, or DEBUG with ``--debug``)."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("edge", "streams"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.propagate = False

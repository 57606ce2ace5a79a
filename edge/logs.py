"""What edge prints on stderr besides its results.

The daemon logs one JSON object per line, which journald stores as is and log shippers parse without
patterns; context travels in ``extra={...}`` and becomes top-level keys (:func:`configure`). The other
commands print warnings as ``edge: warning: ...`` lines and end a failure with one ``edge: error:`` line
(:func:`configure_plain`). In both, nothing else reaches stderr: the native libraries' own messages (OpenCV's
``[ WARN ]`` lines, FFmpeg's ``[tcp @ 0x…]`` lines) are silenced unless ``--debug`` (:func:`quiet_native_logs`),
Python warnings (torch's UserWarnings) are logged, and an exception escaping a thread is one log record,
not a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import warnings

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


class PlainFormatter(logging.Formatter):
    """``edge: warning: stream lost; reopening (stream=door, retry_in_s=0.5)``: one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        context = ", ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        text = record.getMessage() + (f" ({context})" if context else "")
        if record.exc_info:
            error = record.exc_info[1]
            text += f": {type(error).__name__}: {error}"
        return f"edge: {record.levelname.lower()}: {' '.join(text.split())}"


_LOGGERS = ("edge", "streams", "py.warnings")


def _route(formatter: logging.Formatter, level: int, propagate: bool) -> None:
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = propagate
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception


def configure(debug: bool = False) -> None:
    """Routes the ``edge`` and ``streams`` loggers (and Python warnings) to stderr as JSON lines (INFO, or DEBUG
    with ``--debug``)."""
    _route(JsonFormatter(), logging.DEBUG if debug else logging.INFO, propagate=False)


def configure_plain(debug: bool = False) -> None:
    """For the commands other than the daemon: warnings and errors as single ``edge: LEVEL:`` lines (every
    record with ``--debug``); Python warnings only with ``--debug``. Records still reach the root logger,
    which has no handler in a command (so nothing prints twice) and a capturing one in tests."""
    _route(PlainFormatter(), logging.DEBUG if debug else logging.WARNING, propagate=True)
    if not debug:
        warnings.simplefilter("ignore")


def quiet_native_logs(debug: bool = False) -> None:
    """Silences what OpenCV, the FFmpeg inside it and ONNX Runtime print on stderr themselves (shown again with
    ``--debug``). FFmpeg's level is read from the environment when OpenCV first opens a capture, so this runs
    first. OpenCV's own level is set here where ``cv2.utils.logging`` exists (later than 4.8); older builds read
    it only at import, from the default :mod:`edge` sets. ONNX Runtime's default logger serves the sessions
    edge does not open itself (its quantization tools' calibration sessions warn about every unused
    initializer)."""
    import cv2
    import onnxruntime

    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "32" if debug else "-8"  # AV_LOG_INFO, AV_LOG_QUIET
    levels = getattr(cv2.utils, "logging", None)
    if levels is not None:
        levels.setLogLevel(levels.LOG_LEVEL_INFO if debug else levels.LOG_LEVEL_SILENT)
    onnxruntime.set_default_logger_severity(2 if debug else 3)  # 2: warnings (its default), 3: errors only


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ends a thread, as one record of the ``edge`` logger instead of a traceback."""
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("edge").error("thread failed", extra={"thread": name},
                                    exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

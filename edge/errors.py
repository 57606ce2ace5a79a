"""Errors that end a command, each with the exit code the contract gives it.

The CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``;
everything else that escapes is a bug and exits 4 with a hint to rerun with ``--debug``.
"""

import signal


class EdgeError(Exception):
    """A runtime failure (exit 4)."""

    exit_code = 4


class UsageError(EdgeError):
    """A bad command line or configuration (exit 2)."""

    exit_code = 2


class BadInputError(EdgeError):
    """A missing, unreadable or corrupt file, model or stream (exit 3)."""

    exit_code = 3


class Interrupted(EdgeError):
    """A run stopped by a signal after it finished what was in flight and wrote its outputs; the exit code is
    the shell's for that signal, 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, received: signal.Signals, done: str):
        super().__init__(f"stopped by {received.name}: {done}")
        self.exit_code = 128 + int(received)

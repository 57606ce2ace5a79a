"""Errors that end a command, each with the exit code the contract gives it.

The CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``;
everything else that escapes is a bug and exits 4 with a hint to rerun with ``--debug``.
"""


class EdgeError(Exception):
    """A runtime failure (exit 4)."""

    exit_code = 4


class UsageError(EdgeError):
    """A bad command line or configuration (exit 2)."""

    exit_code = 2


class BadInputError(EdgeError):
    """A missing, unreadable or corrupt file, model or stream (exit 3)."""

    exit_code = 3

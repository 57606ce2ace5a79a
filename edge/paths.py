"""Output folders and the names of things in them, made the same way by every command that writes one."""

from __future__ import annotations

import re
from pathlib import Path

from edge.errors import UsageError

NAME_CHARACTERS = "A-Za-z0-9_.-"  # what a bundle, stream or file name may hold: safe in every file system
_UNSAFE = re.compile(f"[^{NAME_CHARACTERS}]+")


def make_out_dir(out: str | Path) -> Path:
    """Creates ``--out`` (and its parents); a folder that cannot be created is a usage error (exit 2)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {out} ({e.strerror})") from None
    return out


def safe_name(text: str) -> str:
    """``text`` usable as one file or folder name: each run of other characters becomes ``_``."""
    return _UNSAFE.sub("_", text)

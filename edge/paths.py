"""Output folders, created the same way by every command that writes one."""

from __future__ import annotations

from pathlib import Path

from edge.errors import UsageError


def make_out_dir(out: str | Path) -> Path:
    """Creates ``--out`` (and its parents); a folder that cannot be created is a usage error (exit 2)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot create {out} ({e.strerror})") from None
    return out

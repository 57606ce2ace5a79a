"""Files that readers must see whole: written beside the target and renamed over it, so a reader (or a
restart after a crash) finds the old content or the new, never a part."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Writes ``data`` (text as UTF-8) to ``path`` atomically. ``mode``: mkstemp makes files owner-only, and
    a service account on the device must read what an administrator wrote (bundles, engines)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, doc: Any) -> None:
    """``doc`` as indented JSON with a final newline, written atomically."""
    write_atomic(path, json.dumps(doc, indent=2) + "\n")

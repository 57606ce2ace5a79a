"""What a source URI is, read from the text alone: live or recorded, a glob, and the stream's default name.

One place for it, so the daemon's stream names (chosen before anything opens, to make them unique) and
the names sources give themselves never disagree.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

DEVICE = re.compile(r"^/dev/video(\d+)$")
CSI = re.compile(r"^csi://(\d+)$")
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
_GLOB_CHARS = frozenset("*?[")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def is_live(uri: str) -> bool:
    """A camera index, ``/dev/videoN``, ``csi://N`` or a network stream: frames come whether or not we read."""
    return (uri.isdigit() or bool(DEVICE.match(uri)) or bool(CSI.match(uri))
            or urlparse(uri).scheme.lower() in NETWORK_SCHEMES)


def is_glob(uri: str) -> bool:
    """A pattern (``frames/*.jpg``) rather than a file whose name happens to hold ``*``, ``?`` or ``[``."""
    return any(c in uri for c in _GLOB_CHARS) and not Path(uri).expanduser().exists()


def safe_name(text: str) -> str:
    """``text`` usable in a file name: every run of other characters than letters, digits, ``_.-`` → ``_``."""
    return _UNSAFE.sub("_", text)


def stream_name(uri: str) -> str:
    """The name a source's events carry unless one is given: ``camera0``, ``video1``, ``csi0``, host and last
    path word of a URL, a file's stem, a folder's name, the folder a glob searches."""
    if uri.isdigit():
        return f"camera{uri}"
    for pattern, prefix in ((DEVICE, "video"), (CSI, "csi")):
        match = pattern.match(uri)
        if match:
            return f"{prefix}{match.group(1)}"
    if is_live(uri):
        parsed = urlparse(uri)
        words = [parsed.hostname or parsed.scheme, *(w for w in parsed.path.split("/") if w)]
        return safe_name("_".join(words[:1] + words[-1:]))
    path = Path(uri).expanduser()
    if is_glob(uri):
        return path.parent.name or "glob"
    return path.name if path.is_dir() else path.stem

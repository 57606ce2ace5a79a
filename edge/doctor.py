"""``edge doctor``: what this machine can run. Never fails because something is missing; says what is.

Optional packages are looked up by their installed metadata, not imported, so the report is fast and
TensorRT/pycuda are never initialised here; CUDA is asked through ctypes (:mod:`edge.cuda_info`), the Jetson
through its release file and ``nvpmodel`` (:mod:`edge.jetson`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import sys
from collections.abc import Callable

from edge import __version__, cuda_info, jetson
from edge.backends.trt_api import TrtApi
from edge.errors import UsageError
from streams.video import describe_encoder

MISSING = "not installed"


def _version(distribution: str, module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return MISSING
    for name in (distribution, module):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "installed (version unknown)"


def _opencv() -> str:
    import cv2

    info = cv2.getBuildInformation()

    def has(feature: str) -> str:
        match = re.search(rf"^\s*{feature}:\s*(\w+)", info, re.MULTILINE)
        return "yes" if match and match.group(1).upper() == "YES" else "no"

    gstreamer = has("GStreamer")
    note = "" if gstreamer == "yes" else " (CSI cameras need an OpenCV built with GStreamer, as JetPack's is)"
    return f"{cv2.__version__}, FFmpeg {has('FFMPEG')}, GStreamer {gstreamer}{note}"


def _onnxruntime() -> str:
    import onnxruntime

    return f"{onnxruntime.__version__}, providers {', '.join(onnxruntime.get_available_providers())}"


def _tensorrt() -> str:
    version = _version("tensorrt", "tensorrt")
    if version == MISSING or not version[0].isdigit():
        return version
    try:
        TrtApi.parse(version)
    except UsageError as e:
        return f"{version} ({e})"
    return f"{version} (supported)"


CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("edge", lambda: __version__),
    ("Python", lambda: f"{platform.python_version()} ({sys.executable})"),
    ("platform", lambda: f"{platform.system()} {platform.machine()}"),
    ("NumPy", lambda: _version("numpy", "numpy")),
    ("OpenCV", _opencv),
    ("video writer", describe_encoder),  # issue 13: PyAV's H.264 in fragmented MP4, or OpenCV's mp4v fallback
    ("ONNX Runtime", _onnxruntime),
    ("TensorRT", _tensorrt),
    ("pycuda", lambda: _version("pycuda", "pycuda")),
    ("CUDA", lambda: cuda_info.describe(cuda_info.probe())),
    ("Jetson", jetson.describe),
    ("PyTorch (compile)", lambda: _version("torch", "torch")),
    ("torchvision (compile)", lambda: _version("torchvision", "torchvision")),
)


def report() -> str:
    """One line per component: its version and abilities, or what is missing."""
    lines = []
    width = max(len(name) for name, _ in CHECKS)
    for name, check in CHECKS:
        try:
            value = check()
        except Exception as e:  # a broken optional component is a finding, not a failure
            value = f"unavailable ({type(e).__name__}: {e})"
        lines.append(f"{name:<{width}}  {value}")
    return "\n".join(lines)

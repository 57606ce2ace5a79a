"""``edge doctor``: what this machine can run. Never fails because something is missing; says what is.

Optional packages are looked up by their installed metadata, not imported, so the report is fast and
TensorRT/pycuda are never initialised here.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from edge import __version__

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


def _cuda() -> str:
    runtime = ctypes.util.find_library("cudart")
    smi = shutil.which("nvidia-smi")
    gpu = ""
    if smi:
        done = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
        gpu = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    if not runtime and not gpu and not Path("/usr/local/cuda").exists():
        return "not found (no CUDA runtime, no NVIDIA GPU visible)"
    parts = [f"runtime {runtime or 'not on the library path'}"]
    if gpu:
        parts.append(f"GPU {gpu}")
    return ", ".join(parts)


def _jetson() -> str:
    model_file = Path("/proc/device-tree/model")
    if not model_file.is_file():
        return "not a Jetson"
    model = model_file.read_bytes().rstrip(b"\0").decode(errors="replace")
    parts = [model]
    release = Path("/etc/nv_tegra_release")
    if release.is_file():
        match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", release.read_text())
        if match:
            parts.append(f"L4T {match.group(1)}.{match.group(2)}")
    if shutil.which("nvpmodel"):
        done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
        mode = next((line for line in done.stdout.splitlines() if "Power Mode" in line), "")
        if mode:
            parts.append(mode.strip())
    return ", ".join(parts)


CHECKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("edge", lambda: __version__),
    ("Python", lambda: f"{platform.python_version()} ({sys.executable})"),
    ("platform", lambda: f"{platform.system()} {platform.machine()}"),
    ("NumPy", lambda: _version("numpy", "numpy")),
    ("OpenCV", _opencv),
    ("ONNX Runtime", _onnxruntime),
    ("TensorRT", lambda: _version("tensorrt", "tensorrt")),
    ("pycuda", lambda: _version("pycuda", "pycuda")),
    ("CUDA", _cuda),
    ("Jetson", _jetson),
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

"""``edge doctor``: what this machine can run. Never fails because something is missing; says what is.

Optional packages are looked up by their installed metadata, not imported, so the report is fast and
TensorRT/pycuda are never initialised here; CUDA is asked through ctypes (:mod:`edge.cuda_info`), the Jetson
through its release file and ``nvpmodel`` (:mod:`edge.jetson`).

On a Jetson the Python stack is half JetPack's (OpenCV, TensorRT, often NumPy from apt) and half pip's, so the
report says where OpenCV comes from and flags a NumPy, OpenCV or ONNX Runtime older than the floors edge
declares (CI tests exactly those floors): ``pip install --no-deps`` or a system package can bring one in.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge import __version__, cuda_info, jetson, machine
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


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric parts of a version: ``"1.26.4"`` → (1, 26, 4), ``"4.8.0-dev"`` → (4, 8, 0)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0].split("-")[0])[:4])


def floors() -> dict[str, str]:
    """The minimum versions edge's installed metadata declares for its runtime dependencies, by distribution
    name (empty when edge runs from a checkout that is not installed)."""
    try:
        requirements = importlib.metadata.requires("edge") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    found = {}
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        floor = re.search(r">=\s*([\w.]+)", requirement.split(";")[0])
        if name and floor and "extra ==" not in requirement:
            found[name.group(0).lower()] = floor.group(1)
    return found


def below_floor(distribution: str, version: str, parts: int = 4) -> str:
    """`` (older than edge's floor X)`` when ``version`` is below the declared floor, compared on ``parts``
    numeric parts (3 for OpenCV, whose JetPack builds say 4.8.0 where pip's wheel is 4.8.0.76)."""
    floor = floors().get(distribution)
    if floor is None or _release(version)[:parts] >= _release(floor)[:parts]:
        return ""
    return f" (older than edge's floor {floor}: untested)"


def _numpy() -> str:
    version = _version("numpy", "numpy")
    return version + below_floor("numpy", version) if version[0].isdigit() else version


def _opencv_origin(cv2_file: str) -> str:
    """Which pip distribution the imported ``cv2`` belongs to, if any (JetPack's comes from apt)."""
    imported = Path(cv2_file).resolve().parent
    for name in importlib.metadata.packages_distributions().get("cv2", []):
        if Path(importlib.metadata.distribution(name).locate_file("cv2")).resolve() == imported:
            return f"pip's {name}"
    return f"not from pip: {imported.parent}"


def _opencv() -> str:
    import cv2

    info = cv2.getBuildInformation()

    def has(feature: str) -> str:
        match = re.search(rf"^\s*{feature}:\s*(\w+)", info, re.MULTILINE)
        return "yes" if match and match.group(1).upper() == "YES" else "no"

    gstreamer = has("GStreamer")
    note = "" if gstreamer == "yes" else " (CSI cameras need an OpenCV built with GStreamer, as JetPack's is)"
    floor = below_floor("opencv-python-headless", cv2.__version__, parts=3)
    return (f"{cv2.__version__}{floor} ({_opencv_origin(cv2.__file__)}), FFmpeg {has('FFMPEG')}, "
            f"GStreamer {gstreamer}{note}")


def _onnxruntime() -> str:
    import onnxruntime

    floor = below_floor("onnxruntime", onnxruntime.__version__)
    return f"{onnxruntime.__version__}{floor}, providers {', '.join(onnxruntime.get_available_providers())}"


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
    ("NumPy", _numpy),
    ("OpenCV", _opencv),
    ("video writer", describe_encoder),  # issue 13: PyAV's H.264 in fragmented MP4, or OpenCV's mp4v fallback
    ("ONNX Runtime", _onnxruntime),
    ("TensorRT", _tensorrt),
    ("pycuda", lambda: _version("pycuda", "pycuda")),
    ("CUDA", lambda: cuda_info.describe(cuda_info.probe())),
    ("Jetson", jetson.describe),
    ("systemd", lambda: "running (edge service install)" if Path("/run/systemd/system").is_dir()
        else "not running here (edge service install --dry-run still prints the unit)"),
    ("PyTorch (compile)", lambda: _version("torch", "torch")),
    ("torchvision (compile)", lambda: _version("torchvision", "torchvision")),
)


def _checked(check: Callable[[], Any]) -> Any:
    try:
        return check()
    except Exception as e:  # a broken optional component is a finding, not a failure
        return f"unavailable ({type(e).__name__}: {e})"


def _installed(distribution: str, module: str) -> str | None:
    version = _version(distribution, module)
    return None if version == MISSING else version


def _providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def facts() -> dict[str, Any]:
    """Everything the doctor finds, as ``edge doctor --json`` prints it: one text per component (``checks``),
    memory, disk, cuDNN, DLA cores, hardware codec elements, cameras and the one-line ``verdict``."""
    cuda = _checked(cuda_info.probe)
    dla = _checked(machine.dla_cores)
    found = {
        "checks": {name: _checked(check) for name, check in CHECKS},
        "memory": _checked(machine.memory), "disk": _checked(machine.disk), "cudnn": _checked(machine.cudnn_version),
        "dla_cores": dla, "codecs": _checked(machine.codec_elements), "cameras": _checked(machine.cameras),
    }
    providers = _checked(_providers)
    found["verdict"] = _checked(lambda: machine.verdict(
        _installed("tensorrt", "tensorrt"), _installed("pycuda", "pycuda"), cuda,
        providers if isinstance(providers, list) else [], dla if isinstance(dla, int) else 0))
    return found


def _lines(found: dict[str, Any]) -> list[tuple[str, str]]:
    """The machine's facts as (name, text) lines for the report."""
    memory, disk, codecs, cameras = found["memory"], found["disk"], found["codecs"], found["cameras"]
    lines = []
    if isinstance(memory, dict):
        lines.append(("memory", f"{memory['available_mib']} MiB free of {memory['total_mib']} MiB; swap "
                                f"{memory['swap_free_mib']} MiB free of {memory['swap_total_mib']} MiB"))
    if isinstance(disk, dict):
        lines.append(("disk", f"{disk['free_mib']} MiB free of {disk['total_mib']} MiB ({disk['path']})"))
    lines.append(("cuDNN", found["cudnn"] or "not found"))
    lines.append(("DLA", f"{found['dla_cores']} core(s)" if found["dla_cores"] else "none"))
    if isinstance(codecs, dict):
        present = [name for name, there in codecs.items() if there]
        lines.append(("hardware codecs", ", ".join(present) if present else
                      f"none of {', '.join(codecs)} (JetPack's GStreamer plugins)"))
    else:
        lines.append(("hardware codecs", codecs or "unknown (no gst-inspect-1.0 to ask GStreamer)"))
    if isinstance(cameras, list):
        lines.append(("cameras", ", ".join(f"{c['device']} ({c['name']})" for c in cameras) or "none found"))
    lines.append(("verdict", str(found["verdict"])))
    return lines


def report(found: dict[str, Any] | None = None) -> str:
    """One line per component: its version and abilities, or what is missing; then the machine and the verdict."""
    found = found or facts()
    rows = [*found["checks"].items(), *_lines(found)]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

"""What ``edge doctor`` reads of the machine besides Python packages: memory and swap, disk, cuDNN, DLA cores,
the hardware video codecs GStreamer offers, cameras, and the one-line verdict on what can run.

Every probe is cheap and never raises: files under ``/proc`` and ``/sys``, device nodes, ``ctypes`` for cuDNN
and ``gst-inspect-1.0 --exists`` for the codec elements (JetPack's ``nvv4l2decoder`` & co.).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edge.cuda_info import CudaInfo, Gpu

CUDNN_LIBRARIES = ("libcudnn.so", "libcudnn.so.9", "libcudnn.so.8")
# JetPack's GStreamer elements for hardware decode/encode, JPEG and conversion, and the CSI camera source.
CODEC_ELEMENTS = ("nvv4l2decoder", "nvv4l2h264enc", "nvv4l2h265enc", "nvjpegdec", "nvvidconv", "nvarguscamerasrc")
_DLA_NODE = re.compile(r"nvhost-(?:ctrl-)?nvdla(\d+)$")  # JetPack 6: nvhost-ctrl-nvdlaN; before: nvhost-nvdlaN


def memory(meminfo: Path = Path("/proc/meminfo")) -> dict[str, int] | None:
    """Total and available memory and swap in MiB (``None`` where /proc/meminfo is missing)."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    kib = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.MULTILINE)}
    return {"total_mib": kib.get("MemTotal", 0) >> 10, "available_mib": kib.get("MemAvailable", 0) >> 10,
            "swap_total_mib": kib.get("SwapTotal", 0) >> 10, "swap_free_mib": kib.get("SwapFree", 0) >> 10}


def disk(path: Path = Path(".")) -> dict[str, Any]:
    """Free and total space where outputs go (the current folder), in MiB."""
    usage = shutil.disk_usage(path)
    return {"path": str(path.resolve()), "free_mib": usage.free >> 20, "total_mib": usage.total >> 20}


def cudnn_version() -> str | None:
    """cuDNN's version from ``cudnnGetVersion`` (9.x: major·10000 + minor·100 + patch; 8.x: major·1000 + …)."""
    for name in CUDNN_LIBRARIES:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        library.cudnnGetVersion.restype = ctypes.c_size_t
        encoded = int(library.cudnnGetVersion())
        major = encoded // 10000 if encoded >= 90000 else encoded // 1000
        rest = encoded % 10000 if encoded >= 90000 else encoded % 1000
        return f"{major}.{rest // 100}.{rest % 100}"
    return None


def dla_cores(dev: Path = Path("/dev")) -> int:
    """DLA engines the kernel exposes (Jetson Xavier and Orin AGX/NX), by their device nodes."""
    try:
        names = [p.name for p in dev.iterdir()]
    except OSError:
        return 0
    return len({m.group(1) for name in names if (m := _DLA_NODE.match(name))})


def codec_elements() -> dict[str, bool] | None:
    """Which of JetPack's hardware codec elements GStreamer has (``None``: no gst-inspect-1.0 to ask)."""
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None:
        return None
    found = {}
    for element in CODEC_ELEMENTS:
        try:
            found[element] = subprocess.run([inspect, "--exists", element], capture_output=True,
                                            timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            found[element] = False
    return found


def cameras(sys_class: Path = Path("/sys/class/video4linux")) -> list[dict[str, str]]:
    """V4L2 video devices with the name their driver gives (USB cameras, and CSI sensors on a Jetson)."""
    try:
        entries = sorted(sys_class.iterdir(), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    except OSError:
        return []
    found = []
    for entry in entries:
        try:
            name = (entry / "name").read_text().strip()
        except OSError:
            name = "unknown"
        found.append({"device": f"/dev/{entry.name}", "name": name})
    return found


def fast_precisions(gpu: Gpu) -> list[str]:
    """The reduced precisions a GPU runs fast (TensorRT's platform_has_fast_fp16/int8): FP16 on sm 5.3
    (Nano), 6.0, 6.2 (TX2) and 7.0+; INT8 (DP4A, then tensor cores) on sm 6.1 and 7.0+."""
    major, minor = (int(part) for part in gpu.compute_capability.split("."))
    fp16 = (major, minor) in ((5, 3), (6, 0), (6, 2)) or major >= 7
    int8 = (major, minor) == (6, 1) or major >= 7
    return [name for name, fast in (("fp16", fp16), ("int8", int8)) if fast]


def verdict(tensorrt: str | None, pycuda: str | None, cuda: CudaInfo, providers: list[str], dla: int) -> str:
    """One line: the best way this machine can run a bundle, and why not better."""
    gpu = cuda.gpus[0] if cuda.gpus else None
    if tensorrt and pycuda and gpu is not None:
        precisions = "+".join(fast_precisions(gpu)) or "fp32 only"
        more = f", {dla} DLA core{'s' if dla != 1 else ''}" if dla else ""
        return f"TensorRT {precisions} available ({tensorrt} on {gpu.name}{more})"
    missing = []
    if tensorrt is None:
        missing.append("TensorRT is not installed (it comes with JetPack)")
    if gpu is None:
        missing.append(f"no CUDA GPU ({cuda.problem or 'none listed'})")
    if tensorrt and pycuda is None:
        missing.append("pycuda is not installed (pip install 'edge[gpu]')")
    where = "the GPU through CUDAExecutionProvider" if "CUDAExecutionProvider" in providers else "the CPU only"
    return f"ONNX Runtime on {where}: {'; '.join(missing)}"

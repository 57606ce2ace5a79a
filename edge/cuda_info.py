"""The CUDA driver, runtime and GPUs of this machine, read through ctypes.

``edge doctor`` and the engine tags (:mod:`edge.engines`) need the driver version and each GPU's name and
compute capability without importing pycuda or TensorRT, which may be missing or slow to load. The
driver API (``libcuda``) answers for the GPUs; the runtime (``libcudart``) for its own version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from pathlib import Path

DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so")
RUNTIME_LIBRARIES = ("libcudart.so", "/usr/local/cuda/lib64/libcudart.so")
_COMPUTE_CAPABILITY_MAJOR = 75  # CUdevice_attribute values from cuda.h
_COMPUTE_CAPABILITY_MINOR = 76


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str  # "8.7"
    memory_mib: int


@dataclass(frozen=True)
class CudaInfo:
    """``None`` versions mean that library was not found; ``problem`` says why no GPU was listed."""

    driver_version: str | None
    runtime_version: str | None
    gpus: tuple[Gpu, ...]
    problem: str | None = None


def format_version(encoded: int) -> str:
    """CUDA encodes versions as ``1000 * major + 10 * minor``: 12060 → ``"12.6"``."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def _load(names: tuple[str, ...], short: str) -> ctypes.CDLL | None:
    found = ctypes.util.find_library(short)
    for name in (*((found,) if found else ()), *names):
        if name.startswith("/") and not Path(name).exists():
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _version(function) -> str | None:
    value = ctypes.c_int(0)
    return format_version(value.value) if function(ctypes.byref(value)) == 0 and value.value > 0 else None


def _gpus(driver: ctypes.CDLL) -> tuple[tuple[Gpu, ...], str | None]:
    status = driver.cuInit(0)
    if status != 0:
        return (), f"cuInit failed with CUresult {status} (no usable GPU or driver)"
    count = ctypes.c_int(0)
    driver.cuDeviceGetCount(ctypes.byref(count))
    gpus = []
    for ordinal in range(count.value):
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        memory = ctypes.c_size_t(0)
        driver.cuDeviceGet(ctypes.byref(device), ordinal)
        driver.cuDeviceGetName(name, len(name), device)
        driver.cuDeviceGetAttribute(ctypes.byref(major), _COMPUTE_CAPABILITY_MAJOR, device)
        driver.cuDeviceGetAttribute(ctypes.byref(minor), _COMPUTE_CAPABILITY_MINOR, device)
        driver.cuDeviceTotalMem_v2(ctypes.byref(memory), device)
        gpus.append(Gpu(name.value.decode(errors="replace"), f"{major.value}.{minor.value}",
                        memory.value >> 20))
    return tuple(gpus), None if gpus else "the driver lists no GPU"


def probe() -> CudaInfo:
    """What CUDA can see now. Never raises: a missing piece is reported in the result."""
    driver = _load(DRIVER_LIBRARIES, "cuda")
    runtime = _load(RUNTIME_LIBRARIES, "cudart")
    runtime_version = _version(runtime.cudaRuntimeGetVersion) if runtime else None
    if driver is None:
        return CudaInfo(None, runtime_version, (), "no CUDA driver (libcuda) found")
    gpus, problem = _gpus(driver)
    return CudaInfo(_version(driver.cuDriverGetVersion), runtime_version, gpus, problem)


def describe(info: CudaInfo) -> str:
    """One line for ``edge doctor``."""
    parts = [f"runtime {info.runtime_version or 'not found'}"]
    if info.driver_version:
        parts.append(f"driver {info.driver_version}")
    parts += [f"GPU {g.name} (compute capability {g.compute_capability}, {g.memory_mib} MiB)" for g in info.gpus]
    if info.problem:
        parts.append(info.problem)
    return ", ".join(parts)

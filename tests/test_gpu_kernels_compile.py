"""The CUDA kernels compile, without a GPU: nvcc builds kernels.cu for Jetson Orin, Xavier and the H100/H200
of the lent GPU machine, exactly as pycuda will (no_extern_c), and every kernel the Python side asks for is
there, without register spills. Running them is tests/test_gpu.py's job (marked ``gpu``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "edge/gpu/kernels.cu"
NVCC = shutil.which("nvcc") or next((p for p in ["/usr/local/cuda/bin/nvcc"] if Path(p).is_file()), None)
TARGETS = {
    "sm_72": "Jetson AGX Xavier / Xavier NX (JetPack 5)",
    "sm_87": "Jetson Orin (JetPack 5 and 6)",
    "sm_90": "H100 / H200 (the lent GPU machine)",
}

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA compiler) is not installed")


def kernels_used_by_python() -> set[str]:
    names = set()
    for module in (ROOT / "edge/gpu").glob("*.py"):
        names |= set(re.findall(r'function\("(\w+)"', module.read_text()))
        names |= set(re.findall(r'"(letterbox_\w+)"', module.read_text()))
    return names


def test_python_asks_for_the_kernels_the_source_defines():
    defined = set(re.findall(r'extern "C" __global__ void (\w+)', SOURCE.read_text()))
    used = kernels_used_by_python()
    assert used == defined == {"letterbox_f32", "letterbox_u8", "argmax_classes", "resize_nearest_u8"}


@pytest.mark.parametrize("arch", TARGETS)
def test_compiles_for(arch, tmp_path):
    supported = subprocess.run([NVCC, "--list-gpu-code"], capture_output=True, text=True).stdout.split()
    if arch not in supported:
        pytest.skip(f"this nvcc cannot target {arch} ({TARGETS[arch]}): CUDA 13 dropped it; JetPack's own nvcc can")
    done = subprocess.run([NVCC, "-cubin", f"-arch={arch}", "-O3", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"),
                           str(SOURCE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = done.stderr
    compiled = set(re.findall(r"Compiling entry function '(\w+)'", report))
    assert compiled == kernels_used_by_python()
    assert "spill" in report and not re.search(r"[1-9]\d* bytes spill", report), report
    assert (tmp_path / "k.cubin").stat().st_size > 0

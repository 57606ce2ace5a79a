"""The CUDA kernels compile, without a GPU: nvcc builds kernels.cu for Jetson Orin, Xavier and the H100/H200
of the lent GPU machine, exactly as pycuda will (no_extern_c), every kernel the Python side launches is
there without register spills, and the arguments Python packs match each kernel's signature. Running them
is tests/test_gpu.py's job (marked ``gpu``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.gpu import preprocess, segmentation

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "edge/gpu/kernels.cu"
NVCC = shutil.which("nvcc") or next((p for p in ["/usr/local/cuda/bin/nvcc"] if Path(p).is_file()), None)
TARGETS = {
    "sm_72": "Jetson AGX Xavier / Xavier NX (JetPack 5)",
    "sm_87": "Jetson Orin (JetPack 5 and 6)",
    "sm_90": "H100 / H200 (the lent GPU machine)",
}

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA compiler) is not installed")


def kernel_signatures() -> dict[str, str]:
    """Each kernel's parameters in kernels.cu as pycuda's struct codes: pointer → P, int → i, float → f."""
    signatures = {}
    for name, parameters in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', SOURCE.read_text()):
        codes = ["P" if "*" in p else {"int": "i", "float": "f"}[p.split()[-2]] for p in parameters.split(",")]
        signatures[name] = "".join(codes)
    return signatures


def kernels_used_by_python() -> dict[str, str]:
    return {**preprocess.KERNEL_ARGUMENTS, **segmentation.KERNEL_ARGUMENTS}


def test_python_passes_what_each_kernel_takes():
    """The argument formats pycuda packs must match the CUDA signatures, or the kernels read garbage."""
    assert kernel_signatures() == kernels_used_by_python()
    assert set(kernel_signatures()) == {"letterbox_f32", "letterbox_u8", "argmax_classes", "resize_nearest_u8"}


@needs_nvcc
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
    assert compiled == set(kernels_used_by_python())
    assert "spill" in report and not re.search(r"[1-9]\d* bytes spill", report), report
    assert (tmp_path / "k.cubin").stat().st_size > 0

"""pycuda, imported only when a GPU path is used, and the CUDA context edge works in.

TensorRT runs on the CUDA runtime, which works in each device's *primary* context. edge takes that same
context in pycuda (rather than ``pycuda.autoinit``'s private one), so engines, buffers, streams and the
kernels of :mod:`edge.gpu` share one address space.

pycuda keeps its context stack per thread (a ``boost::thread_specific_ptr`` in its ``cuda.hpp``): a context
pushed on the thread that opened the backend is not current on the inference workers, whose first
``memcpy_htod_async`` then fails with "invalid device context". And a thread that exits with a context still
pushed makes pycuda print "The context stack was not empty upon module cleanup" and abort the process. So no
push outlives a call: every call into pycuda runs inside :meth:`CudaContext.active`, which pushes the context
on the calling thread and pops it again, also when the call raises.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, UsageError

KERNELS = "kernels.cu"
JETPACK_NVCC = Path("/usr/local/cuda/bin/nvcc")  # JetPack installs CUDA here but puts it on no one's PATH


def import_pycuda() -> Any:
    """``pycuda.driver``, or one clear error line saying how to get it."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise UsageError(f"the GPU path needs pycuda (pip install 'edge[gpu]'): {e}") from None
    return cuda


def kernel_source() -> str:
    return resources.files("edge.gpu").joinpath(KERNELS).read_text()


def find_nvcc() -> Path:
    """The CUDA compiler: ``$CUDA_HOME/bin/nvcc``, JetPack's ``/usr/local/cuda/bin/nvcc``, then ``nvcc`` on PATH.

    pycuda runs ``nvcc --version`` for its cache key even when the kernels are cached (``compile_plain`` in
    ``pycuda/compiler.py``), so the compiler must be found on every start, and a systemd service has no
    ``/usr/local/cuda/bin`` on its PATH.
    """
    candidates = [Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc"] if os.environ.get("CUDA_HOME") else []
    candidates.append(JETPACK_NVCC)
    on_path = shutil.which("nvcc")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise UsageError("the GPU kernels need the CUDA compiler nvcc, found neither in $CUDA_HOME/bin, "
                     f"{JETPACK_NVCC.parent} nor on PATH (on a Jetson: apt install cuda-nvcc-<version>)")


class CudaContext:
    """The device's primary context, retained for edge; current on a thread only inside :meth:`active`.

    ``cuda`` is ``pycuda.driver``; :meth:`function` returns a kernel of :data:`KERNELS`, compiled on first
    use (pycuda caches the binary on disk, so later processes load it without compiling).
    """

    def __init__(self, device: int = 0):
        self.cuda = cuda = import_pycuda()
        cuda.init()
        if device >= cuda.Device.count():
            raise EdgeError(f"CUDA device {device} not found ({cuda.Device.count()} visible)")
        self.device = cuda.Device(device)
        self._context = self.device.retain_primary_context()
        self._module: Any = None

    @contextmanager
    def active(self) -> Iterator[Any]:
        """Makes the context current on the calling thread for the block (nesting is fine), then pops it, so a
        worker thread never keeps a push; yields ``pycuda.driver``."""
        if self._context is None:
            raise EdgeError("the CUDA context was closed")
        self._context.push()
        try:
            yield self.cuda
        finally:
            self.cuda.Context.pop()  # pops this thread's top context, the one pushed above

    def function(self, name: str) -> Any:
        """A kernel of :data:`KERNELS` (compiled with :func:`find_nvcc`'s compiler on first use)."""
        if self._module is None:
            from pycuda.compiler import SourceModule

            with self.active():  # pycuda picks the target architecture from the current context's device
                # The source declares its own extern "C" kernels so that it can use C++ templates inside.
                self._module = SourceModule(kernel_source(), nvcc=str(find_nvcc()), no_extern_c=True,
                                            options=["-O3"])
        return self._module.get_function(name)

    def close(self) -> None:
        """Lets go of the kernels and of edge's hold on the context (the device keeps it while TensorRT uses
        it); buffers made in it must have been freed first."""
        self._module = None
        self._context = None

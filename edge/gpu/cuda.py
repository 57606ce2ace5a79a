"""pycuda, imported only when a GPU path is used, and the CUDA context edge works in.

TensorRT runs on the CUDA runtime, which works in each device's *primary* context. edge takes that same
context in pycuda (rather than ``pycuda.autoinit``'s private one), so engines, buffers, streams and the
kernels of :mod:`edge.gpu` share one address space.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from edge.errors import EdgeError, UsageError

KERNELS = "kernels.cu"


def import_pycuda() -> Any:
    """``pycuda.driver``, or one clear error line saying how to get it."""
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise UsageError(f"the GPU path needs pycuda (pip install 'edge[gpu]'): {e}") from None
    return cuda


def kernel_source() -> str:
    return resources.files("edge.gpu").joinpath(KERNELS).read_text()


class CudaContext:
    """The device's primary context, made current on this thread until :meth:`close`.

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
        self._context.push()
        self._module: Any = None

    def function(self, name: str) -> Any:
        if self._module is None:
            from pycuda.compiler import SourceModule

            # The source declares its own extern "C" kernels so that it can use C++ templates inside.
            self._module = SourceModule(kernel_source(), no_extern_c=True, options=["-O3"])
        return self._module.get_function(name)

    def close(self) -> None:
        """Pops the context from this thread (the device keeps it while other users hold it)."""
        if self._context is not None:
            self._context.pop()
            self._context = None
            self._module = None

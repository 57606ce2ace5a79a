"""A stand-in for ``pycuda.driver`` and ``pycuda.compiler`` where no GPU is, strict where edge can go wrong.

What it keeps of pycuda (read in inducer/pycuda's ``src/cpp/cuda.hpp``, ``src/wrapper/wrap_cudadrv.cpp`` and
``pycuda/compiler.py``):

- The context stack is per thread (``boost::thread_specific_ptr<context_stack>``): ``Context.push`` pushes on
  the calling thread, the static ``Context.pop`` pops the calling thread's top and raises "cannot pop
  non-current context" on an empty stack. Every call that needs a context (allocations, copies, streams,
  events, kernel launches) raises ``LogicError: ... invalid device context`` on a thread with none current.
- A thread that exits with a non-empty stack is what makes pycuda abort ("The context stack was not empty upon
  module cleanup"): here it is recorded in :data:`aborts` (thread name, depth).
- ``SourceModule`` runs ``nvcc --version`` for its cache key before it looks in the cache
  (``compile_plain``), so a missing ``nvcc`` fails even when the kernels are cached: pytools raises
  ``ExecError("error invoking 'nvcc --version': ...")``.

Device memory is host memory here (one NumPy byte array per allocation, at a made-up address); copies happen at
once. Kernels run nothing: their launches are recorded in :data:`launches` for the tests to check.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import itertools
import re
import shutil
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_addresses = itertools.count(0x7F0000000000, 0x100000000)


class Error(Exception):
    pass


class LogicError(Error):
    pass


class ExecError(OSError):
    """pytools.prefork.ExecError, which pycuda's compiler lets through."""


def install(monkeypatch) -> types.SimpleNamespace:
    """Installs a fresh stand-in as ``pycuda``, ``pycuda.driver`` and ``pycuda.compiler``; returns its state
    (``driver``, ``aborts``, ``launches``, ``modules``: the SourceModule calls, ``uploads``: a digest of
    every host→device copy, ``memory(address, nbytes)``, ``depth()``: this thread's stack depth)."""
    state = types.SimpleNamespace(aborts=[], launches=[], modules=[], allocations={}, uploads=[])
    local = threading.local()

    class _Stack(list):
        def __del__(self):  # runs when the thread's locals are cleaned up, at thread exit
            if self:
                state.aborts.append((self.thread, len(self)))

    def stack() -> _Stack:
        if not hasattr(local, "stack"):
            local.stack = _Stack()
            local.stack.thread = threading.current_thread().name
        return local.stack

    def need_context(call: str) -> None:
        if not stack():
            raise LogicError(f"{call} failed: invalid device context")

    class Context:
        def __init__(self, device):
            self.device = device
            self.released = False

        def push(self):
            stack().append(self)

        @staticmethod
        def pop():
            if not stack():
                raise LogicError("context::pop failed: cannot pop non-current context")
            stack().pop()

        @staticmethod
        def get_device():
            need_context("cuCtxGetDevice")
            return stack()[-1].device

        def detach(self):
            self.released = True

    class Device:
        @staticmethod
        def count():
            return 1

        def __init__(self, index):
            self.index = index

        def retain_primary_context(self):
            return Context(self)

        def name(self):
            return "Stand-in GPU"

        def compute_capability(self):
            return (8, 7)

    @dataclass
    class DeviceAllocation:
        address: int
        data: np.ndarray
        freed: bool = False

        def __int__(self):
            return self.address

        def free(self):
            need_context("cuMemFree")
            self.freed = True

    def resolve(pointer, nbytes: int, call: str) -> np.ndarray:
        """The bytes at ``pointer`` (an allocation or an address inside one)."""
        address = int(pointer)
        for start, allocation in state.allocations.items():
            if start <= address and address + nbytes <= start + allocation.data.size and not allocation.freed:
                return allocation.data[address - start:address - start + nbytes]
        raise LogicError(f"{call} failed: invalid argument (no allocation holds {nbytes} bytes at {address:#x})")

    def mem_alloc(nbytes):
        need_context("cuMemAlloc")
        allocation = DeviceAllocation(next(_addresses), np.zeros(int(nbytes), np.uint8))
        state.allocations[allocation.address] = allocation
        return allocation

    def as_bytes(array) -> np.ndarray:
        return np.ascontiguousarray(array).reshape(-1).view(np.uint8)

    def memcpy_htod(dest, src, stream=None, call="cuMemcpyHtoD"):
        need_context(call)
        data = as_bytes(src)
        resolve(dest, data.size, call)[:] = data
        state.uploads.append(digest(data))

    def memcpy_dtoh(dest, src, stream=None, call="cuMemcpyDtoH"):
        need_context(call)
        if not dest.flags.c_contiguous:
            raise LogicError(f"{call} failed: the host buffer is not contiguous")
        dest.reshape(-1).view(np.uint8)[:] = resolve(src, dest.nbytes, call)

    def memcpy_htod_async(dest, src, stream=None):
        memcpy_htod(dest, src, call="cuMemcpyHtoDAsync")

    def memcpy_dtoh_async(dest, src, stream=None):
        memcpy_dtoh(dest, src, call="cuMemcpyDtoHAsync")

    def to_device(array):
        allocation = mem_alloc(np.asarray(array).nbytes)
        memcpy_htod(allocation, array)
        return allocation

    def pagelocked_empty(shape, dtype):
        need_context("cuMemHostAlloc")
        return np.empty(shape, dtype)

    handles = itertools.count(0x5000)

    class Stream:
        def __init__(self):
            need_context("cuStreamCreate")
            self.handle = next(handles)

        def synchronize(self):
            need_context("cuStreamSynchronize")

    class Event:
        def __init__(self):
            need_context("cuEventCreate")

        def record(self, stream=None):
            need_context("cuEventRecord")

        def synchronize(self):
            need_context("cuEventSynchronize")

    driver = types.ModuleType("pycuda.driver")
    driver.__dict__.update(
        Error=Error, LogicError=LogicError, Context=Context, Device=Device, DeviceAllocation=DeviceAllocation,
        Stream=Stream, Event=Event, init=lambda flags=0: None, mem_alloc=mem_alloc, memcpy_htod=memcpy_htod,
        memcpy_dtoh=memcpy_dtoh, memcpy_htod_async=memcpy_htod_async, memcpy_dtoh_async=memcpy_dtoh_async,
        to_device=to_device, pagelocked_empty=pagelocked_empty)

    class Function:
        def __init__(self, name):
            self.name, self.format = name, None

        def prepare(self, arg_types):
            self.format = arg_types

        def prepared_async_call(self, grid, block, stream, *args):
            need_context("cuLaunchKernel")
            if self.format is None or len(args) != len(self.format):
                raise LogicError(f"{self.name}: {len(args)} arguments for the prepared format {self.format}")
            state.launches.append((self.name, stream, args))

    class SourceModule:
        def __init__(self, source, nvcc="nvcc", options=None, keep=False, no_extern_c=False, arch=None,
                     code=None, cache_dir=None, include_dirs=None):
            found = shutil.which(nvcc) if not Path(nvcc).is_absolute() else (nvcc if Path(nvcc).is_file() else None)
            if found is None:
                raise ExecError(f"error invoking '{nvcc} --version': [Errno 2] No such file or directory")
            state.modules.append({"nvcc": nvcc, "no_extern_c": no_extern_c, "options": options})
            self.names = set(_kernel_names(source))

        def get_function(self, name):
            if name not in self.names:
                raise LogicError(f"cuModuleGetFunction failed: named symbol not found ({name})")
            return Function(name)

    compiler = types.ModuleType("pycuda.compiler")
    compiler.SourceModule = SourceModule
    package = types.ModuleType("pycuda")
    package.__path__ = []
    for module in (package, driver, compiler):
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    package.driver, package.compiler = driver, compiler
    for name, module in (("pycuda", package), ("pycuda.driver", driver), ("pycuda.compiler", compiler)):
        monkeypatch.setitem(sys.modules, name, module)
    state.driver = driver
    state.memory = lambda pointer, nbytes: resolve(pointer, nbytes, "test")
    state.depth = lambda: len(stack())
    return state


def digest(array) -> str:
    """What :data:`uploads` records of a host→device copy: the sha1 of its bytes."""
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def _kernel_names(source: str) -> list[str]:
    return re.findall(r'extern "C" __global__ void (\w+)\(', source)

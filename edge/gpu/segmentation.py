"""Segmentation post-processing on the GPU: argmax over the class planes, then the class map resized to the
frame (nearest neighbour) and copied to a page-locked host array, all on the caller's stream.

It produces the same numbers as the CPU decoder (``softmax`` with ``upsample: nearest``,
:mod:`edge.decoders.segmentation`): the argmax keeps the first maximum as ``np.argmax`` does, and the resize
reads the decoder's own :func:`~edge.decoders.segmentation.nearest_tables`. Only the frame-sized uint8 mask
crosses back to the host, not the ``[C, H, W]`` float logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.bundle import InputSpec
from edge.decoders.segmentation import Window, nearest_tables
from edge.gpu.cuda import CudaContext
from edge.preprocess import Transform

MAX_CLASSES = 256  # the class map is uint8
BLOCK_2D = (32, 8, 1)
BLOCK_1D = (256, 1, 1)
# argmax_classes and resize_nearest_u8 in kernels.cu, as pycuda packs them: P pointer, i int.
KERNEL_ARGUMENTS = {"argmax_classes": "PiiP", "resize_nearest_u8": "PiPPPii"}


@dataclass
class _Sized:
    """Buffers and tables for one frame size and placement (the Transform)."""

    key: Transform
    mask: np.ndarray  # page-locked host mask, frame height × width
    device: tuple[Any, ...]  # device mask and index tables (kept alive here)
    arguments: tuple[int, ...]
    grid: tuple[int, int, int]


class GpuClassMap:
    """``[C, H, W]`` float32 logits on the GPU → uint8 class of every frame pixel, on the host. ``spec`` is
    the model input the logits came from (the output may be coarser than it). Make and call it inside
    :meth:`CudaContext.active`."""

    def __init__(self, classes: int, height: int, width: int, spec: InputSpec, context: CudaContext):
        if not 1 <= classes <= MAX_CLASSES:
            raise ValueError(f"{classes} classes: class maps are uint8, so 1 to {MAX_CLASSES} classes")
        self._cuda = context.cuda
        self._shape = (classes, height, width)
        self._spec = spec
        self.class_map = self._cuda.mem_alloc(height * width)  # model resolution, stays on the GPU
        self._argmax = context.function("argmax_classes")
        self._argmax.prepare(KERNEL_ARGUMENTS["argmax_classes"])
        self._resize = context.function("resize_nearest_u8")
        self._resize.prepare(KERNEL_ARGUMENTS["resize_nearest_u8"])
        self._sized: _Sized | None = None

    def __call__(self, logits: Any, transform: Transform, stream: Any) -> np.ndarray:
        """Enqueues the work for device logits ``logits`` and returns the page-locked mask it fills; the mask
        is valid once ``stream`` has finished (and is overwritten by the next call)."""
        classes, height, width = self._shape
        plane = height * width
        self._argmax.prepared_async_call((-(-plane // BLOCK_1D[0]), 1, 1), BLOCK_1D, stream, int(logits),
                                         classes, plane, int(self.class_map))
        sized = self._for(transform)
        self._resize.prepared_async_call(sized.grid, BLOCK_2D, stream, *sized.arguments)
        self._cuda.memcpy_dtoh_async(sized.mask, sized.device[0], stream)
        return sized.mask

    def _for(self, transform: Transform) -> _Sized:
        frame_w, frame_h = transform.source_size
        if self._sized is None or self._sized.key != transform:
            self._sized = None
            cuda = self._cuda
            mask = cuda.pagelocked_empty((frame_h, frame_w), np.uint8)
            rows, cols = nearest_tables(Window.of(self._shape[1:], self._spec, transform), transform)
            device = (cuda.mem_alloc(mask.nbytes), cuda.to_device(cols), cuda.to_device(rows))
            arguments = (int(self.class_map), self._shape[2], int(device[1]), int(device[2]), int(device[0]),
                         frame_w, frame_h)
            grid = (-(-frame_w // BLOCK_2D[0]), -(-frame_h // BLOCK_2D[1]), 1)
            self._sized = _Sized(transform, mask, device, arguments, grid)
        return self._sized

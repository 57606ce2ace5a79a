"""Frame → model input on the GPU: resize, colour order, normalisation and layout in one kernel.

The geometry (where the frame lands) and the normalisation constants come from the CPU
:class:`~edge.preprocess.Preprocessor`, the reference. The resampling weights are OpenCV's own: for uint8
images ``cv2.resize(INTER_LINEAR)`` works in fixed point with weights rounded to 11 bits, computed per
output column and row exactly as :func:`linear_taps` does, so the kernel (``letterbox_*`` in
``kernels.cu``) writes the same values as the CPU path, not merely close ones.

Per frame: the frame is copied into a page-locked staging buffer, sent to the GPU asynchronously on the
caller's stream, and the kernel writes straight into the engine's input buffer. Tables and buffers are made
once per source size. Use one instance per batch item of a backend slot: its staging buffer is in flight
until the slot is waited on. Make and call it inside :meth:`CudaContext.active`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.bundle import InputSpec
from edge.gpu.cuda import CudaContext
from edge.preprocess import Plan, Preprocessor, Transform, check_frame

BLOCK = (32, 8, 1)
# letterbox_f32 / letterbox_u8 in kernels.cu, as pycuda packs them: P pointer, i int.
KERNEL_ARGUMENTS = {"letterbox_f32": "PiPPiiiiPiiiPiii", "letterbox_u8": "PiPPiiiiPiiiPiii"}
_WEIGHT_ONE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE: 11-bit fixed-point weights


def linear_taps(source: int, target: int) -> np.ndarray:
    """``[target, 4]`` int32: for each output index, the two source indices and their fixed-point weights,
    as OpenCV computes them for INTER_LINEAR (pixel centres aligned, edges clamped)."""
    scale = 1.0 / (target / source)  # OpenCV keeps the inverse scale and inverts it, in double
    position = ((np.arange(target) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int32)
    fraction = position - first
    low = first < 0
    first[low], fraction[low] = 0, 0
    high = first >= source - 1
    first[high], fraction[high] = source - 1, 0
    taps = np.empty((target, 4), np.int32)
    taps[:, 0] = first
    taps[:, 1] = np.minimum(first + 1, source - 1)
    taps[:, 2] = np.rint((np.float32(1) - fraction) * np.float32(_WEIGHT_ONE))
    taps[:, 3] = np.rint(fraction * np.float32(_WEIGHT_ONE))
    return taps


@dataclass
class _Sized:
    """Everything made for one source size."""

    plan: Plan
    staging: np.ndarray  # page-locked copy of the frame
    device: tuple[Any, ...]  # the frame's device copy and the tap tables (kept alive here)
    arguments: tuple[int, ...]  # the kernel's arguments before the output pointer
    grid: tuple[int, int, int]


class GpuPreprocessor:
    """Writes BGR uint8 frames into a model input buffer on the GPU, following an :class:`InputSpec`."""

    def __init__(self, spec: InputSpec, context: CudaContext):
        self.spec = spec
        self._cuda = context.cuda
        self._reference = Preprocessor(spec)  # the CPU path's geometry and constants
        norm = self._reference.norm
        self._norm = self._cuda.to_device(np.concatenate([norm.mean, norm.inv_std, norm.pad]).astype(np.float32))
        self._after_output = (spec.width, spec.height, int(spec.layout == "nchw"))
        kernel = "letterbox_f32" if spec.dtype == "float32" else "letterbox_u8"
        self._kernel = context.function(kernel)
        self._kernel.prepare(KERNEL_ARGUMENTS[kernel])
        self._sized: _Sized | None = None

    def __call__(self, image: np.ndarray, out: Any, stream: Any) -> Transform:
        """Enqueues the preprocessing of ``image`` into device memory ``out`` (one batch item of the model input:
        an allocation or an address) on ``stream`` and returns the transform back to frame pixels. Returns
        before the GPU is done."""
        check_frame(image)
        sized = self._for_size(image.shape[1], image.shape[0])
        np.copyto(sized.staging, image)
        self._cuda.memcpy_htod_async(sized.device[0], sized.staging, stream)
        self._kernel.prepared_async_call(sized.grid, BLOCK, stream, *sized.arguments, int(out), *self._after_output)
        return sized.plan.transform

    def _for_size(self, width: int, height: int) -> _Sized:
        if self._sized is None or self._sized.plan.transform.source_size != (width, height):
            self._sized = None  # release the previous size's buffers before allocating the new ones
            cuda = self._cuda
            plan = self._reference.plan(width, height)
            box = plan.transform.content_box()
            staging = cuda.pagelocked_empty((height, width, 3), np.uint8)
            device = (cuda.mem_alloc(staging.nbytes), cuda.to_device(linear_taps(width, box[2])),
                      cuda.to_device(linear_taps(height, box[3])))
            arguments = (int(device[0]), width, int(device[1]), int(device[2]), *box, int(self._norm),
                         *self._reference.norm.order)
            grid = (-(-self.spec.width // BLOCK[0]), -(-self.spec.height // BLOCK[1]), 1)
            self._sized = _Sized(plan, staging, device, arguments, grid)
        return self._sized

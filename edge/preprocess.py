"""Frame → model input tensor, as the bundle's input spec says, and the way back for boxes and points.

Per-frame work is three vectorised steps into buffers planned once per source size: one ``cv2.resize``
into a preallocated scratch image, the pad strips filled with the (normalised) pad value, and one
NumPy ufunc per channel that swaps colour order, normalises, converts dtype and lays out NCHW or NHWC
straight into the backend's input buffer. No allocation happens once the plan exists.

The plan (where the frame lands in the model input) and the normalisation constants are public so that
the GPU preprocessor (:mod:`edge.gpu.preprocess`) follows exactly the same geometry and arithmetic: this
CPU path is the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.bundle.spec import InputSpec
from edge.geometry import Transform

# The normalisation of ImageNet-trained models (torchvision's, most segmenters'), in 0..255 pixel units.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
_PLANS_KEPT = 16  # frame sizes whose plans are kept: one per stream in practice


@dataclass(frozen=True)
class Normalisation:
    """How pixel values become model values, per model channel: ``(pixel - mean) * inv_std``.

    ``order[c]`` is the BGR source channel that model channel ``c`` reads; ``pad`` is the pad value as the
    model sees it (normalised for float inputs). ``identity`` means the values pass through unchanged.
    """

    order: tuple[int, int, int]
    mean: np.ndarray
    inv_std: np.ndarray
    pad: np.ndarray
    is_float: bool
    identity: bool

    @classmethod
    def from_spec(cls, spec: InputSpec) -> Normalisation:
        mean = np.asarray(spec.mean, np.float32)
        inv_std = (1.0 / np.asarray(spec.std, np.float64)).astype(np.float32)
        is_float = spec.dtype == "float32"
        pad = (spec.pad_value - mean) * inv_std if is_float else np.full(3, spec.pad_value)
        return cls((2, 1, 0) if spec.color == "rgb" else (0, 1, 2), mean, inv_std, pad, is_float,
                   identity=not mean.any() and bool(np.all(inv_std == 1)))


@dataclass(frozen=True)
class Plan:
    """Everything that depends only on the source size: computed once, reused for every frame."""

    transform: Transform
    content: tuple[slice, slice]  # rows, cols of the model canvas that hold the resized frame
    pads: tuple[tuple[slice, slice], ...]  # the rest of the canvas
    scratch: np.ndarray | None  # resize target; None when the frame already has the content size


class Preprocessor:
    """Writes frames into a model input buffer following an :class:`InputSpec`.

    >>> pre = Preprocessor(bundle.input)
    >>> transform = pre(frame_bgr, backend_input_buffer)
    """

    def __init__(self, spec: InputSpec, interpolation: int = cv2.INTER_LINEAR):
        self.spec = spec
        self.norm = Normalisation.from_spec(spec)
        self.interpolation = interpolation  # for whole frames; INTER_AREA where a pyramid shrinks them a lot
        self._plans: dict[tuple[int, int], Plan] = {}
        self._crop_scratch: np.ndarray | None = None

    def plan(self, width: int, height: int) -> Plan:
        """The plan for frames of this size (made on the first frame of a new size, then reused). Several are
        kept, as a batch holds frames of several streams; a source that keeps changing size resets them."""
        plan = self._plans.get((width, height))
        if plan is None:
            if len(self._plans) >= _PLANS_KEPT:
                self._plans.clear()
            plan = self._plans[(width, height)] = self._make_plan(width, height)
        return plan

    def __call__(self, image: np.ndarray, out: np.ndarray) -> Transform:
        """Fills ``out`` (the model input, batch item 0 or a ``[C,H,W]``/``[H,W,C]`` view) from a BGR frame."""
        check_frame(image)
        plan = self.plan(image.shape[1], image.shape[0])
        resized = image if plan.scratch is None else cv2.resize(
            image, (plan.scratch.shape[1], plan.scratch.shape[0]), dst=plan.scratch,
            interpolation=self.interpolation)
        self._write(resized, out[0] if out.ndim == 4 else out, plan.content, plan.pads)
        return plan.transform

    def crop(self, image: np.ndarray, box: np.ndarray, out: np.ndarray) -> Transform:
        """Fills ``out`` with the frame region ``box`` (x1, y1, x2, y2 in frame pixels; it may reach past the
        frame, which reads as the pad value) stretched to the model input, for top-down pose, per-box
        classification and cascades. Give a box of the input's aspect to avoid distortion.

        A region that shrinks is averaged (``INTER_AREA`` on the whole-pixel region: bilinear sampling
        would alias, and MTCNN then sees faces in the aliasing); one that grows is sampled exactly,
        sub-pixel box and all, by one ``warpAffine``."""
        x1, y1, x2, y2 = (float(v) for v in box)
        width, height = self.spec.width, self.spec.height
        if self._crop_scratch is None:
            self._crop_scratch = np.empty((height, width, 3), np.uint8)
        shrinks = x2 - x1 > width and y2 - y1 > height
        if shrinks:
            x1, y1, x2, y2 = (float(round(v)) for v in (x1, y1, x2, y2))
            self._shrink(image, (int(x1), int(y1), int(x2), int(y2)))
        sx, sy = width / max(x2 - x1, 1e-3), height / max(y2 - y1, 1e-3)
        if not shrinks:
            # Pixel centres, as cv2.resize aligns them: model index + 0.5 = (frame index + 0.5 - x1) * sx.
            matrix = np.array([[sx, 0.0, (0.5 - x1) * sx - 0.5], [0.0, sy, (0.5 - y1) * sy - 0.5]])
            cv2.warpAffine(image, matrix, (width, height), dst=self._crop_scratch, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(self.spec.pad_value,) * 3)
        self._write(self._crop_scratch, out[0] if out.ndim == 4 else out, (slice(None), slice(None)), ())
        return Transform(sx, sy, -x1 * sx, -y1 * sy, (image.shape[1], image.shape[0]))

    def _shrink(self, image: np.ndarray, box: tuple[int, int, int, int]) -> None:
        """The whole-pixel region ``box`` (padded where it leaves the frame) area-averaged into the crop scratch."""
        x1, y1, x2, y2 = box
        h, w = image.shape[:2]
        inside = image[min(max(y1, 0), h):max(min(y2, h), 0), min(max(x1, 0), w):max(min(x2, w), 0)]
        if inside.size == 0:
            self._crop_scratch[...] = self.spec.pad_value
            return
        pads = (max(-y1, 0), max(y2 - h, 0), max(-x1, 0), max(x2 - w, 0))
        region = cv2.copyMakeBorder(inside, *pads, cv2.BORDER_CONSTANT, value=(self.spec.pad_value,) * 3) \
            if any(pads) else inside
        cv2.resize(region, (self.spec.width, self.spec.height), dst=self._crop_scratch, interpolation=cv2.INTER_AREA)

    def _write(self, resized: np.ndarray, item: np.ndarray, content: tuple[slice, slice],
               pads: tuple[tuple[slice, slice], ...]) -> None:
        """One ufunc per channel: colour order, normalisation, dtype and layout, straight into ``item``."""
        norm = self.norm
        rows, cols = content
        for c, source_channel in enumerate(norm.order):
            plane = self._channel(item, c)
            src = resized[:, :, source_channel]
            dst = plane[rows, cols]
            if not norm.is_float or norm.identity:
                np.copyto(dst, src, casting="unsafe")
            else:
                np.subtract(src, norm.mean[c], out=dst, dtype=np.float32)
                np.multiply(dst, norm.inv_std[c], out=dst)
            for pad_rows, pad_cols in pads:
                plane[pad_rows, pad_cols] = norm.pad[c]

    def _channel(self, item: np.ndarray, c: int) -> np.ndarray:
        return item[c] if self.spec.layout == "nchw" else item[:, :, c]

    def _make_plan(self, width: int, height: int) -> Plan:
        spec = self.spec
        W, H = spec.width, spec.height
        if spec.resize == "stretch":
            new_w, new_h = W, H
        elif spec.resize == "square-pad":
            # Pad the frame to a square (right/bottom), then resize the square to W×H.
            side = max(width, height)
            new_w, new_h = round(width * W / side), round(height * H / side)
        else:
            ratio = min(W / width, H / height)
            new_w, new_h = min(W, round(width * ratio)), min(H, round(height * ratio))
        new_w, new_h = max(new_w, 1), max(new_h, 1)
        x0 = (W - new_w) // 2 if spec.resize == "letterbox-center" else 0
        y0 = (H - new_h) // 2 if spec.resize == "letterbox-center" else 0
        transform = Transform(new_w / width, new_h / height, float(x0), float(y0), (width, height))
        content = (slice(y0, y0 + new_h), slice(x0, x0 + new_w))
        strips = [
            (slice(0, y0), slice(0, W)),
            (slice(y0 + new_h, H), slice(0, W)),
            (slice(y0, y0 + new_h), slice(0, x0)),
            (slice(y0, y0 + new_h), slice(x0 + new_w, W)),
        ]
        pads = tuple(s for s in strips if s[0].stop > s[0].start and s[1].stop > s[1].start)
        scratch = None if (new_w, new_h) == (width, height) else np.empty((new_h, new_w, 3), np.uint8)
        return Plan(transform, content, pads, scratch)


def check_frame(image: np.ndarray) -> None:
    """Rejects anything but a BGR uint8 frame ``[H,W,3]`` (what OpenCV decodes), naming what it got."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame [H,W,3], got {image.dtype} {image.shape}")

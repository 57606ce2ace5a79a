"""The frame being annotated, the scratch buffers drawing reuses frame after frame, and caption placement.

Every pixel operation is one vectorised OpenCV call over the frame (or a mask's window): a class map is
tinted by expanding it to three channels and looking the colours up with ``cv2.LUT``, blended with
``cv2.addWeighted`` and copied back under the shown mask with ``cv2.copyTo``, all into buffers allocated
once per frame size. Lines and dots go out as one ``cv2.polylines`` call per colour.

Captions are not drawn where they are asked for but queued and placed at :meth:`Canvas.finish`, after
every layer, so that they land on top and never cover each other: each takes the free spot nearest its
anchor (above the box's corner) among the rectangles already taken by panels (legends, the overlay) and
earlier captions, trying in its column caption-height steps either side and the spots flush with the
captions already there, then the columns beside. A caption with no free spot near its box is left out
rather than drawn over another.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.palette import text_color

MASK_ALPHA = 0.5
CAPTION_COLUMNS = 3  # a caption may move this many of its widths sideways when its own column is full
FONT = cv2.FONT_HERSHEY_SIMPLEX
Color = tuple[int, int, int]
TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT = "top-left", "top-right", "bottom-left"


@dataclass(frozen=True)
class Style:
    """Sizes that follow the frame's short side, so a picture reads the same at 480p and at 1080p
    (1080p: 3 px lines, 0.9 font scale, 2 px strokes: captions about 30 px high)."""

    line: int  # box outline thickness
    font_scale: float
    font_thickness: int
    pad: int  # around a caption's text
    descent: int  # below the text's baseline
    line_height: int  # of a caption box

    @classmethod
    def for_frame(cls, height: int, width: int) -> Style:
        short = min(height, width)
        scale = max(0.4, short / 1200)
        thickness, pad = max(1, round(scale * 2)), max(2, round(scale * 4))
        (_, ascent), descent = cv2.getTextSize("Ag", FONT, scale, thickness)
        return cls(max(1, round(short / 360)), scale, thickness, pad, descent, ascent + descent + 2 * pad)

    def text_width(self, text: str) -> int:
        """Width of ``text``'s caption box, padding included."""
        return cv2.getTextSize(text, FONT, self.font_scale, self.font_thickness)[0][0] + 2 * self.pad


class Canvas:
    """Draws onto one frame at a time (:meth:`begin`), in place, with buffers kept while the size stays."""

    def __init__(self) -> None:
        self.image = np.zeros((0, 0, 3), np.uint8)
        self._shape: tuple[int, ...] = ()
        self._captions: list[tuple[str, int, int, Color, bool]] = []
        self._taken = np.zeros((16, 4), np.int64)
        self._count = 0
        self._corners: dict[str, int] = {}

    def begin(self, image: np.ndarray) -> None:
        """Draw onto ``image`` from now on (in place); scratch buffers are reallocated only for a new size."""
        if image.shape != self._shape:
            self._allocate(image.shape)
        self.image = image
        self._captions.clear()
        self._count = 0
        self._corners = {TOP_LEFT: 0, TOP_RIGHT: 0, BOTTOM_LEFT: 0}

    def _allocate(self, shape: tuple[int, ...]) -> None:
        height, width = shape[:2]
        self._shape = shape
        self.style = Style.for_frame(height, width)
        self._tint = np.empty((height, width, 3), np.uint8)
        self._blend = np.empty((height, width, 3), np.uint8)
        self._planes = [np.empty((height, width), np.uint8) for _ in range(3)]
        self._index8 = np.empty((height, width), np.uint8)
        self._mask = np.empty((height, width), np.uint8)
        self._bits: dict[np.dtype, np.ndarray] = {}
        self._lut = np.zeros((3, 256), np.uint8)  # per channel
        # Caption spots in the order they are tried: the anchor, then one caption height at a time either side.
        steps = np.arange(1, height // self.style.line_height + 2)
        self._steps = np.concatenate([[0], np.stack([steps, -steps], axis=1).ravel()]) * self.style.line_height
        columns = np.arange(1, CAPTION_COLUMNS + 1)
        self._shifts = np.concatenate([[0], np.stack([columns, -columns], axis=1).ravel()]).tolist()

    # Tints -------------------------------------------------------------------------------------------------

    def tint_map(self, index_map: np.ndarray, colors: np.ndarray, hidden: int | None = None) -> None:
        """Tints every pixel with the colour of its index (``colors[index_map]``), except where the index is
        ``hidden``. Below 256 colours, one ``cv2.LUT`` per channel and a merge (twice as fast as a
        three-channel LUT, six times ``np.take``); beyond, ``np.take``."""
        if len(colors) <= 256:
            index8 = index_map if index_map.dtype == np.uint8 else self._narrow(index_map)
            self._lut[:, :len(colors)] = colors.T
            for plane, channel in zip(self._planes, self._lut):
                cv2.LUT(index8, channel, dst=plane)
            cv2.merge(self._planes, dst=self._tint)
        else:
            np.take(colors, index_map, axis=0, out=self._tint, mode="clip")
        mask = None if hidden is None else cv2.compare(index_map, hidden, cv2.CMP_NE, dst=self._mask)
        self._blend_into(self.image, self._tint, mask)

    def _narrow(self, index_map: np.ndarray) -> np.ndarray:
        np.copyto(self._index8, index_map, casting="unsafe")
        return self._index8

    def tint_bits(self, bit_map: np.ndarray, colors: dict[int, Color]) -> None:
        """Tints the pixels where bit k of ``bit_map`` is set with ``colors[k]``, one class after another."""
        bits = self._bits.get(bit_map.dtype)
        if bits is None:
            bits = self._bits[bit_map.dtype] = np.empty(bit_map.shape, bit_map.dtype)
        for k, color in colors.items():
            np.bitwise_and(bit_map, 1 << k, out=bits)
            cv2.compare(bits, 0, cv2.CMP_NE, dst=self._mask)
            self._tint[:] = color
            self._blend_into(self.image, self._tint, self._mask)

    def tint_patch(self, x: int, y: int, patch: np.ndarray, color: Color) -> None:
        """Tints the pixels of a boolean ``patch`` whose top-left corner lies at frame pixel (x, y)."""
        height, width = patch.shape
        tint = self._tint[:height, :width]
        tint[:] = color
        region = self.image[y:y + height, x:x + width]
        self._blend_into(region, tint, patch.view(np.uint8), self._blend[:height, :width])

    def _blend_into(self, region: np.ndarray, tint: np.ndarray, mask: np.ndarray | None,
                    blend: np.ndarray | None = None) -> None:
        if mask is None:
            cv2.addWeighted(region, 1 - MASK_ALPHA, tint, MASK_ALPHA, 0, dst=region)
            return
        blend = self._blend if blend is None else blend
        cv2.addWeighted(region, 1 - MASK_ALPHA, tint, MASK_ALPHA, 0, dst=blend)
        cv2.copyTo(blend, mask, region)

    # Lines and dots ----------------------------------------------------------------------------------------

    def boxes(self, boxes: np.ndarray, colors: np.ndarray) -> None:
        """Box outlines ([N, 4] x1, y1, x2, y2 and [N, 3] uint8 colours), one polylines call per colour."""
        x1, y1, x2, y2 = np.round(boxes).astype(np.int32).T
        corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1),
                            np.stack([x1, y2], 1)], axis=1)
        for color, members in _by_color(colors):
            cv2.polylines(self.image, corners[members], True, color, self.style.line, cv2.LINE_AA)

    def lines(self, segments: np.ndarray, color: Color, thickness: int) -> None:
        """[M, 2, 2] int32 line segments in one colour."""
        if len(segments):
            cv2.polylines(self.image, segments, False, color, thickness, cv2.LINE_AA)

    def dots(self, points: np.ndarray, color: Color, radius: int) -> None:
        """[M, 2] int32 filled dots in one colour: each a closed one-point polyline, whose round caps make
        a disc ``2 * radius`` across."""
        if len(points):
            cv2.polylines(self.image, points.reshape(-1, 1, 2), True, color, 2 * radius, cv2.LINE_AA)

    # Text --------------------------------------------------------------------------------------------------

    def caption(self, text: str, x: int, y: int, color: Color, below: bool = False) -> None:
        """Queues a caption for (x, y): its box's bottom-left there (``below``: its top-left)."""
        self._captions.append((text, x, y, color, below))

    def panel(self, rows: list[tuple[str, Color]], corner: str) -> None:
        """Rows of text on their colours, stacked from a corner of the frame (class lists, legends, the
        overlay); captions keep out of them."""
        height, width = self.image.shape[:2]
        for text, color in rows:
            w, h = self.style.text_width(text), self.style.line_height
            offset = self._corners[corner]
            x = width - w if corner == TOP_RIGHT else 0
            y = height - offset - h if corner == BOTTOM_LEFT else offset
            self._corners[corner] += h
            self._draw_text(text, x, max(0, y), w, color)

    def finish(self) -> None:
        """Places and draws the queued captions, first come first served."""
        for text, x, y, color, below in self._captions:
            w, h = self.style.text_width(text), self.style.line_height
            spot = self._free_spot(x, y if below else y - h, w, h)
            if spot is not None:
                self._draw_text(text, *spot, w, color)
        self._captions.clear()

    def _free_spot(self, x: int, top: int, w: int, h: int) -> tuple[int, int] | None:
        """The free spot nearest (x, top) for a w × h caption: in its column first (against the anchor or
        flush with a caption already there), then one caption width to the right, to the left, and so on."""
        height, width = self.image.shape[:2]
        taken = self._taken[:self._count]
        anchor = min(max(top, 0), max(height - h, 0))
        for shift in self._shifts:
            left = min(max(x + shift * w, 0), max(width - w, 0))
            in_column = taken[(taken[:, 0] < left + w) & (left < taken[:, 2])]
            if not ((in_column[:, 1] < anchor + h) & (anchor < in_column[:, 3])).any():
                return left, anchor  # the usual case: the anchor itself is free
            tops = np.concatenate([anchor + self._steps, in_column[:, 3], in_column[:, 1] - h])
            tops = tops[(tops >= 0) & (tops <= height - h)]
            tops = tops[np.argsort(np.abs(tops - anchor), kind="stable")]
            clash = (in_column[:, 1] < tops[:, None] + h) & (tops[:, None] < in_column[:, 3])
            free = np.flatnonzero(~clash.any(axis=1))
            if len(free):
                return left, int(tops[free[0]])
        return None

    @property
    def placed(self) -> np.ndarray:
        """[K, 4] x0, y0, x1, y1 of every panel row and caption drawn since :meth:`begin`."""
        return self._taken[:self._count].copy()

    def _draw_text(self, text: str, x: int, y: int, w: int, color: Color) -> None:
        style, h = self.style, self.style.line_height
        cv2.rectangle(self.image, (x, y), (x + w - 1, y + h - 1), color, cv2.FILLED)
        cv2.putText(self.image, text, (x + style.pad, y + h - style.pad - style.descent), FONT, style.font_scale,
                    text_color(color), style.font_thickness, cv2.LINE_AA)
        if self._count == len(self._taken):
            self._taken = np.concatenate([self._taken, np.zeros_like(self._taken)])
        self._taken[self._count] = (x, y, x + w, y + h)
        self._count += 1


def _by_color(colors: np.ndarray) -> list[tuple[Color, np.ndarray]]:
    """The distinct colours of [N, 3] ``colors``, each with the indices that have it."""
    unique, inverse = np.unique(colors, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return [(tuple(color), np.flatnonzero(inverse == i)) for i, color in enumerate(unique.tolist())]

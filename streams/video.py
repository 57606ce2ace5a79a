"""The annotated video file: fragmented MP4 with H.264 through PyAV, so that what was written before a crash
plays, in a player and in a browser; OpenCV's ``mp4v`` writer where PyAV is missing.

Why fragmented: a plain MP4 keeps its index (the ``moov`` box) until the file is closed, so a process killed
before ``close`` leaves a file no player opens. With ``frag_keyframe+empty_moov`` the index is written first
and each fragment (``moof`` + ``mdat``) carries its own; a fragment starts at every keyframe, one per
second (``gop`` = the frame rate), and ``flush_packets`` hands each fragment to the kernel as soon as it is
muxed. A SIGKILL or a power cut therefore loses at most the fragment being filled, about one second of
frames. Why H.264 (libx264, which PyAV's wheels carry): Chromium and every other browser play it in MP4,
while ``mp4v`` (MPEG-4 Part 2) plays in none. ``zerolatency`` keeps the encoder from holding frames back
(no lookahead, no B-frames), so a frame handed to :meth:`VideoFileWriter.write` is in the next fragment.

H.264 in 4:2:0 needs even sizes: an odd width or height is padded by one repeated row or column (a 1×1
image becomes 2×2), so any frame a source yields can be written.
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from streams.base import WriterError

FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


def pyav_available() -> bool:
    return importlib.util.find_spec("av") is not None


def describe_encoder() -> str:
    """Which writer annotated videos get here (for ``edge doctor``)."""
    if not pyav_available():
        return "OpenCV mp4v (PyAV is not installed: videos are lost on a crash and do not play in browsers)"
    import av

    return f"PyAV {av.__version__}: H.264 (libx264), fragmented MP4"


def even_size(image: np.ndarray) -> np.ndarray:
    """``image`` with an odd width or height padded by one repeated column or row (4:2:0 needs even sizes)."""
    height, width = image.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return image
    return cv2.copyMakeBorder(image, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)


class _PyAvEncoder:
    """libx264 into fragmented MP4; every FFmpeg failure (a full disk included) is a :class:`WriterError`."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        import av

        self._errors = (av.FFmpegError, OSError, ValueError)
        self.path = path
        rate = Fraction(fps).limit_denominator(1001)
        try:
            self._container = av.open(str(path), "w", format="mp4", options=FRAGMENTED_MP4)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
            self._stream.codec_context.options = {"preset": "veryfast", "tune": "zerolatency",
                                                  "g": str(max(1, round(fps)))}
        except self._errors as e:
            raise WriterError(f"{path}: cannot open an H.264 video writer ({e})") from None
        self._frame_type = av.VideoFrame

    def write(self, image: np.ndarray) -> None:
        self._mux(self._frame_type.from_ndarray(image, format="bgr24"))

    def _mux(self, frame) -> None:
        try:
            self._container.mux(self._stream.encode(frame))
        except self._errors as e:
            raise WriterError(f"{self.path}: cannot write the video ({e})") from None

    def close(self) -> None:
        try:
            self._mux(None)  # the frames the encoder still holds
        finally:
            try:
                self._container.close()
            except self._errors as e:
                raise WriterError(f"{self.path}: cannot finish the video ({e})") from None


class _OpenCvEncoder:
    """OpenCV's ``mp4v`` MP4: plays only once closed, and OpenCV does not report failed writes."""

    FOURCC = "mp4v"

    def __init__(self, path: Path, fps: float, width: int, height: int):
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*self.FOURCC), fps, (width, height))
        if not self._writer.isOpened():
            raise WriterError(f"{path}: cannot open a {self.FOURCC} video writer")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()


class VideoFileWriter:
    """An MP4 opened on the first frame, whose size it takes (made even; later frames of another size are
    resized to it, as OpenCV's writer would drop them); ``close`` finishes the file. ``pyav`` chooses the
    writer (default: PyAV where it is installed)."""

    def __init__(self, path: Path, fps: float, pyav: bool | None = None):
        self.path = path
        self.fps = fps
        self.pyav = pyav_available() if pyav is None else pyav
        self._encoder: _PyAvEncoder | _OpenCvEncoder | None = None
        self.size = (0, 0)
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        image = even_size(image)
        height, width = image.shape[:2]
        if self._encoder is None:
            kind = _PyAvEncoder if self.pyav else _OpenCvEncoder
            self._encoder = kind(self.path, self.fps, width, height)
            self.size = (width, height)
        elif (width, height) != self.size:  # a folder of images of several sizes, a camera reopened at another
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._encoder.write(image)
        self.frames += 1

    def close(self) -> None:
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            encoder.close()

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

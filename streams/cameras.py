"""Live sources: USB/V4L2 cameras, CSI cameras through GStreamer, and RTSP/HTTP streams through FFmpeg.

All are OpenCV ``VideoCapture`` objects opened with an explicit backend, so a failure names the backend
that was tried instead of OpenCV silently falling through its list. A live source never ends on its own:
any failed read raises :class:`SourceError`, and the feed above decides whether to reopen it.

Frames carry the monotonic time at which ``grab`` returned (the capture time as close as OpenCV lets us
see it), and ``pts`` is the wall-clock time of capture in Unix seconds, which is what a fleet of devices
reporting to one place can compare.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import cv2

from streams.base import CaptureSettings, Frame, Source, SourceError
from streams.uris import CSI, DEVICE, stream_name

# FFmpeg options for network streams: TCP (no smeared frames from lost UDP packets), no demuxer buffering.
RTSP_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay"
HTTP_OPTIONS = "fflags;nobuffer|flags;low_delay"
FFMPEG_OPTIONS_VARIABLE = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPENING = threading.Lock()


def ffmpeg_capture(target: str, options: str, *args: Any) -> cv2.VideoCapture:
    """``cv2.VideoCapture(target, *args)`` opened with exactly these FFmpeg ``options`` ("" for none). OpenCV
    reads them from the process's environment when a capture opens, so they are set for that one call and
    then restored, and every open takes a lock: a network camera's ``nobuffer``/``low_delay`` seen by a file
    opened at the same time, or left behind, makes that file drop its delayed frames. A network open holds the
    lock for at most its open timeout."""
    with _OPENING:
        before = os.environ.get(FFMPEG_OPTIONS_VARIABLE)
        os.environ[FFMPEG_OPTIONS_VARIABLE] = options
        try:
            return cv2.VideoCapture(target, *args)
        finally:
            if before is None:
                del os.environ[FFMPEG_OPTIONS_VARIABLE]
            else:
                os.environ[FFMPEG_OPTIONS_VARIABLE] = before


def has_gstreamer() -> bool:
    match = re.search(r"^\s*GStreamer:\s*(\w+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(match) and match.group(1).upper() == "YES"


def csi_pipeline(sensor: int, settings: CaptureSettings) -> str:
    """The JetPack GStreamer pipeline for a CSI camera: Argus ISP → NVMM → BGR for OpenCV. The appsink keeps
    one buffer and drops older ones, so OpenCV always reads the newest frame."""
    width, height = settings.width or 1920, settings.height or 1080
    fps = round(settings.fps or 30)
    return (f"nvarguscamerasrc sensor-id={sensor} ! "
            f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
            f"nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            f"appsink drop=true max-buffers=1 sync=false")


def _open_capture(uri: str, settings: CaptureSettings) -> cv2.VideoCapture:
    timeout_ms = int(settings.timeout_s * 1000)
    device, csi = DEVICE.match(uri), CSI.match(uri)
    if uri.isdigit() or device:
        capture = cv2.VideoCapture(int(uri) if uri.isdigit() else uri, cv2.CAP_V4L2)
        if capture.isOpened():
            _configure_camera(capture, settings)
        return capture
    if csi:
        if not has_gstreamer():
            raise SourceError(f"{uri}: CSI cameras need an OpenCV built with GStreamer (JetPack's is; the PyPI "
                              f"wheel is not); see 'edge doctor'")
        return cv2.VideoCapture(csi_pipeline(int(csi.group(1)), settings), cv2.CAP_GSTREAMER)
    options = RTSP_OPTIONS if urlparse(uri).scheme.lower().startswith("rtsp") else HTTP_OPTIONS
    return ffmpeg_capture(uri, options, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])


def _configure_camera(capture: cv2.VideoCapture, settings: CaptureSettings) -> None:
    """V4L2 wants the pixel format before the size, and the size before the rate."""
    if settings.fourcc:
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*settings.fourcc.ljust(4)[:4]))
    if settings.width:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, settings.width)
    if settings.height:
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, settings.height)
    if settings.fps:
        capture.set(cv2.CAP_PROP_FPS, settings.fps)
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue is latency: keep one buffer


class CaptureSource(Source):
    """A camera or network stream. Iterating never ends normally: a lost stream raises :class:`SourceError`."""

    live = True

    def __init__(self, uri: str, name: str | None = None, source_id: int = 0,
                 settings: CaptureSettings | None = None):
        self.uri = uri
        self.capture = _open_capture(uri, settings or CaptureSettings())
        if not self.capture.isOpened():
            raise SourceError(f"{uri}: cannot open the stream (device busy or absent, or the server is not "
                              f"answering)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        super().__init__(name or stream_name(uri), fps if 0 < fps < 1000 else 30.0, source_id)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            if not self.capture.grab():
                raise SourceError(f"{self.uri}: the stream stopped after {index} frames")
            captured = time.monotonic()
            ok, image = self.capture.retrieve()
            if not ok:
                raise SourceError(f"{self.uri}: frame {index} could not be decoded")
            yield Frame(image, index, time.time(), self.name, captured, time.monotonic() - captured,
                        self.source_id)
            index += 1

    def close(self) -> None:
        self.capture.release()

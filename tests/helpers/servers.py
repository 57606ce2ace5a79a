"""Loopback servers the tests run for real: the MJPEG camera stand-in and a mosquitto broker."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class MjpegCamera:
    """The footage as an MJPEG stream on a fixed loopback port; ``kill`` and ``start`` to make it drop."""

    def __init__(self, video: Path, stall_after: int | None = None):
        self.video, self.port = video, free_port()
        self.stall_after = stall_after
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegCamera:
        stall = [] if self.stall_after is None else [str(self.stall_after)]
        self.process = subprocess.Popen([sys.executable, "-m", "tests.helpers.mjpeg_server", str(self.video),
                                         str(self.port), *stall], cwd=ROOT, stdout=subprocess.PIPE)
        assert self.process.stdout.readline().strip() == b"ready"
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def camera(assets):
    cam = MjpegCamera(assets / "videos/bgslibrary_highway_traffic_320x240.avi").start()
    yield cam
    cam.kill()


@pytest.fixture
def mosquitto(tmp_path):
    """A real mosquitto broker on a loopback port (installed by .ci/run)."""
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait()

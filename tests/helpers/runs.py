"""Running ``python -m edge`` as a user would, in a subprocess or on a real terminal, and reading what it left."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import cv2

from tests.helpers.servers import ROOT

EDGE = [sys.executable, "-m", "edge"]


def start(*argv, **kwargs) -> subprocess.Popen:
    """``edge ARGV`` in a subprocess, stdout and stderr captured as text."""
    return subprocess.Popen([*EDGE, *map(str, argv)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


class Terminal:
    """``edge ARGV`` on a pseudo-terminal of its own, as its controlling terminal: :meth:`ctrl_c` types Ctrl-C,
    and the terminal's line discipline sends SIGINT to the foreground process group, as it does for a user."""

    def __init__(self, *argv):
        self.master, slave = pty.openpty()

        def controlling_terminal():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen([*EDGE, *map(str, argv)], cwd=ROOT, stdin=slave, stdout=slave,
                                        stderr=slave, preexec_fn=controlling_terminal, close_fds=True)
        os.close(slave)
        self.output = b""

    def ctrl_c(self) -> None:
        assert termios.tcgetattr(self.master)[6][termios.VINTR] == b"\x03"
        os.write(self.master, b"\x03")

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        if self.process.poll() is None:
            self.process.kill()
            raise AssertionError(f"still running {timeout} s after Ctrl-C: {self.text}")
        self._read(0.2)
        os.close(self.master)
        return self.process.returncode

    def _read(self, timeout: float) -> None:
        if select.select([self.master], [], [], timeout)[0]:
            try:
                self.output += os.read(self.master, 65536)
            except OSError:  # EIO once the child closed its side
                pass

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


def event_lines(out: Path, name: str = "events.jsonl") -> list[dict]:
    """Every line of the events file, each parsed (a cut line fails here)."""
    path = out / name
    if not path.exists():
        return []
    text = path.read_text()
    assert not text or text.endswith("\n"), f"the last line of {path} is cut: {text[-80:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def lines_so_far(out: Path) -> int:
    path = out / "events.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_lines(out: Path, count: int, process: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while lines_so_far(out) < count:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited {process.returncode} before {count} events: {process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} events after {timeout} s")
        time.sleep(0.1)


def video_frames(path: Path) -> int:
    """Frames a player decodes from ``path`` (decoded one by one: a fragmented MP4 keeps no frame count)."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()
    return frames

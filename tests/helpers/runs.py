"""Running ``python -m edge`` as a user would, in a subprocess or on a real terminal, and reading what it left."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import select
import signal
import subprocess
import sys
import termios
import threading
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


class JsonLog:
    """A daemon's stderr read in a thread, each line parsed as a JSON log record (a line that is not JSON fails
    the test), so a test can wait for a record with a deadline even while the daemon writes nothing."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.records: list[dict] = []
        self.bad: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def until(self, condition, timeout: float = 120.0) -> list[dict]:
        """Reads records until ``condition(records)`` holds; fails after ``timeout`` s or when stderr ends."""
        deadline = time.monotonic() + timeout
        while not condition(self.records):
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"not seen in {timeout} s: {self.records[-5:]}") from None
            if line is None:
                raise AssertionError(f"stderr ended (exit {self.process.wait()}): {self.records[-5:]}")
            self.records.append(json.loads(line))
        return self.records

    def stop(self, timeout: float = 60.0) -> list[dict]:
        """SIGTERM, then every record up to the exit, which must be 0."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        while (line := self._lines.get(timeout=timeout)) is not None:
            self.records.append(json.loads(line))
        assert code == 0, self.records[-5:]
        return self.records


def write_frames(video: Path, folder: Path, indices: range, name: str = "{:04d}.png") -> Path:
    """Frames ``indices`` of ``video`` as images in ``folder`` (named by ``name`` from the frame index): an image
    folder source of real footage, written by the test, never committed."""
    capture = cv2.VideoCapture(str(video))
    for index in range(indices.stop):
        ok, image = capture.read()
        assert ok, f"{video}: no frame {index}"
        if index in indices:
            cv2.imwrite(str(folder / name.format(index)), image)
    capture.release()
    return folder

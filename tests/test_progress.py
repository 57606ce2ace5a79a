"""Progress bars draw on a terminal only (edge/progress.py); ``edge replay`` shows frames, fps and ETA."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from tests.helpers.servers import ROOT

SCRIPT = "from edge.progress import bar\nfor _ in bar(range(3), desc='frames', unit='frame', mininterval=0): pass\n"


def on_a_terminal(command: list[str], timeout: float = 60) -> str:
    """What ``command`` draws on stderr when stderr is a terminal (a pty 100 columns wide)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # rows, columns of a terminal
    process = subprocess.Popen(command, stderr=follower, stdout=subprocess.DEVNULL, cwd=ROOT)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: the process closed the terminal's last end
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert process.wait(timeout) == 0, drawn.decode(errors="replace")
    return drawn.decode(errors="replace")


def test_no_bar_when_stderr_is_a_file():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert done.stderr == ""


def test_bar_on_a_terminal():
    drawn = on_a_terminal([sys.executable, "-c", SCRIPT])
    assert "frames" in drawn and "3/3" in drawn


REPLAY = ["replay", "--no-video", "--no-tracking"]


def test_replay_shows_frames_fps_and_eta_on_a_terminal(yolox_bundle, assets, tmp_path):
    video = str(assets / "videos/face-demographics-walking.gif")
    drawn = on_a_terminal([sys.executable, "-m", "edge", *REPLAY, video, "--bundle", str(yolox_bundle.root),
                           "--out", str(tmp_path / "tty")])
    lines = [line for line in re.split(r"[\r\n]", drawn) if "frames" in line]
    progress = [line for line in lines if re.search(r"\d+/35 frames, [\d.]+ fps, ETA \d\d:\d\d", line)]
    assert progress, drawn
    # and none when stderr is a file: the same replay writes nothing there
    done = subprocess.run([sys.executable, "-m", "edge", *REPLAY, video, "--bundle", str(yolox_bundle.root),
                           "--out", str(tmp_path / "file")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stderr == "" and "35 frames" in done.stdout

"""Progress bars draw on a terminal only (edge/progress.py)."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

SCRIPT = "from edge.progress import bar\nfor _ in bar(range(3), desc='frames', unit='frame', mininterval=0): pass\n"


def test_no_bar_when_stderr_is_a_file():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert done.stderr == ""


def test_bar_on_a_terminal():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # rows, columns of a terminal
    subprocess.run([sys.executable, "-c", SCRIPT], stderr=follower, stdout=subprocess.DEVNULL, check=True, timeout=60)
    drawn = os.read(leader, 1 << 16).decode()
    os.close(follower)
    os.close(leader)
    assert "frames" in drawn and "3/3" in drawn

"""The annotated video: H.264 in fragmented MP4 plays in a browser (headless Chromium), also cut short as a
killed run leaves it, where OpenCV's mp4v does not; any frame size is written."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from streams.video import VideoFileWriter
from tests.helpers.runs import video_frames

PAGE = """<html><body><video id="v" src="{video}" muted></video><pre id="r">waiting</pre><script>
const v = document.getElementById("v"), r = document.getElementById("r");
v.addEventListener("loadeddata", () => {{ r.textContent = "loaded " + v.videoWidth + "x" + v.videoHeight; }});
v.addEventListener("error", () => {{ r.textContent = "error " + v.error.code; }});
</script></body></html>"""


def browser_says(video, tmp_path) -> str:
    """What a ``<video>`` element in headless Chromium makes of ``video``: ``loaded WxH`` or ``error CODE``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    page = video.with_suffix(".html")
    page.write_text(PAGE.format(video=video.name))
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    return re.search(r'<pre id="r">([^<]*)', done.stdout).group(1)


def moving_frames(count, width=160, height=120):
    for i in range(count):
        image = np.zeros((height, width, 3), np.uint8)
        image[:, (4 * i) % width:(4 * i) % width + 8] = (0, 200, 255)
        yield image


def test_a_video_cut_short_as_a_kill_leaves_it_plays_in_a_browser(tmp_path):
    path = tmp_path / "annotated.mp4"
    with VideoFileWriter(path, 25.0) as writer:
        for image in moving_frames(70):  # two whole fragments of 25 frames, and part of a third
            writer.write(image)
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) - len(whole) // 10])  # the end of the last fragment never reached disk
    assert 50 <= video_frames(path) < 70
    assert browser_says(path, tmp_path) == "loaded 160x120"


def test_opencvs_mp4v_fallback_does_not_play_in_a_browser(tmp_path):
    """Why PyAV: the fallback's file is refused (MEDIA_ERR_SRC_NOT_SUPPORTED)."""
    path = tmp_path / "annotated.mp4"
    with VideoFileWriter(path, 25.0, pyav=False) as writer:
        for image in moving_frames(10):
            writer.write(image)
    assert video_frames(path) == 10
    assert browser_says(path, tmp_path) == "error 4"


@pytest.mark.parametrize("pyav", [True, False], ids=["pyav", "opencv"])
def test_odd_and_changing_frame_sizes_are_written(tmp_path, pyav):
    path = tmp_path / "annotated.mp4"
    with VideoFileWriter(path, 25.0, pyav=pyav) as writer:
        writer.write(np.full((1, 1, 3), 99, np.uint8))  # padded to 2×2
        writer.write(np.full((241, 321, 3), 99, np.uint8))  # resized to the first frame's size
    assert writer.size == (2, 2)
    assert video_frames(path) == 2

"""The live preview page in a real browser (headless Chromium): the image on it moves."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tests.helpers.servers import ROOT, free_port, wait_for_port

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=800,600",
         "--timeout=3000"]


def screenshot(browser, url, path, profile):
    subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
                   capture_output=True, timeout=90, check=True)
    image = cv2.imread(str(path))
    assert image is not None, "no screenshot written"
    return image


def test_preview_page_shows_a_moving_image(yolox_bundle, assets, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    port = free_port()
    daemon = subprocess.Popen([sys.executable, "-m", "edge", "run", "--source",
                               str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"), "--bundle",
                               str(yolox_bundle.root), "--out", str(tmp_path / "out"), "--no-video",
                               "--http-port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, 60)
        first = screenshot(browser, f"http://127.0.0.1:{port}/", tmp_path / "a.png", tmp_path / "profile-a")
        time.sleep(1.0)
        second = screenshot(browser, f"http://127.0.0.1:{port}/", tmp_path / "b.png", tmp_path / "profile-b")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    assert daemon.returncode == 0
    background = np.array([0x11, 0x11, 0x11])
    # The 320×240 video sits in the page's image; it must be there in both, and its pixels must change.
    drawn = (np.abs(first.astype(int) - background).sum(2) > 30) & (np.abs(second.astype(int) - background).sum(2) > 30)
    ys, xs = np.nonzero(drawn)
    assert (xs.max() - xs.min()) >= 300 and (ys.max() - ys.min()) >= 220, "no image on the page"
    changed = np.abs(first.astype(int) - second.astype(int)).sum(2) > 40
    assert changed[drawn].mean() > 0.02, "the image did not move between the two screenshots"

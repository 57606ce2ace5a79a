"""The live page in a real browser (headless Chromium): the image on it moves; a tile and a chart per source."""

from __future__ import annotations

import re
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


def dump_dom(browser, url, profile) -> str:
    """The page's DOM once its scripts have run for a few seconds (the preview streams never finish loading)."""
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url], capture_output=True,
                          text=True, timeout=90, check=True)
    return done.stdout


def test_live_page_has_a_tile_and_a_chart_per_source(yolox_bundle, assets, tmp_path):
    """A two-source daemon: one tile per source, each with its fps/latency chart drawn (the canvas says how many
    points), its numbers, the bundle and backend it runs; ``#NAME`` opens that tile enlarged."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    port = free_port()
    sources = [str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"),
               str(assets / "videos/one-by-one-person-detection.mp4")]
    daemon = subprocess.Popen([sys.executable, "-m", "edge", "run", *[a for s in sources for a in ("--source", s)],
                               "--bundle", str(yolox_bundle.root), "--out", str(tmp_path / "out"), "--no-video",
                               "--http-port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, 60)
        time.sleep(2.0)  # a few seconds of history for the charts
        dom = dump_dom(browser, f"http://127.0.0.1:{port}/#one-by-one-person-detection", tmp_path / "profile-dom")
        screenshot(browser, f"http://127.0.0.1:{port}/", tmp_path / "live.png", tmp_path / "profile-shot")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    assert daemon.returncode == 0
    tiles = re.findall(r'<section class="(tile[^"]*)" id="tile-([^"]+)">(.*?)</section>', dom, re.S)
    assert [name for _, name, _ in tiles] == ["bgslibrary_highway_traffic_320x240", "one-by-one-person-detection"]
    assert [kind for kind, _, _ in tiles] == ["tile", "tile big"]  # the one the address names is enlarged
    for _, _, tile in tiles:
        points = re.search(r'<canvas class="chart"[^>]* data-points="(\d+)"', tile)
        assert points and int(points.group(1)) >= 1, tile
        assert re.search(r'class="numbers">\d+×\d+ · [\d.–]+ fps · latency', tile), tile
        assert "yolox_nano (detection, onnxruntime fp32)" in tile
        assert 'src="/stream.mjpg?stream=' in tile
    assert '<a href="/metrics">metrics</a>' in dom

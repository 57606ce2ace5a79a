"""Outputs that a long-running daemon needs: rotated events, token-protected HTTP, Prometheus buckets."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from edge.metrics import LatencyHistogram
from streams.http import FrameHub, PreviewServer, json_route
from streams.writers import EventLog


def test_events_rotate_by_size_between_whole_lines(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", max_bytes=1000, backups=2)
    for i in range(100):
        log.write(json.dumps({"frame": i, "pad": "x" * 40}))
    log.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    for f in files:
        assert f.stat().st_size <= 1000 + 60
        frames = [json.loads(line)["frame"] for line in f.read_text().splitlines()]  # every line whole
        assert frames == list(range(frames[0], frames[0] + len(frames)))
    assert json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])["frame"] == 99


def fetch(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_token_is_required_when_given_and_for_non_loopback_hosts():
    with pytest.raises(ValueError, match="token is required"):
        PreviewServer(FrameHub(["a"]), {}, host="0.0.0.0", port=0)
    server = PreviewServer(FrameHub(["a"]), {"/health": json_route(lambda: (200, {"ok": True}))}, port=0,
                           token="s3cret").start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert fetch(f"{base}/health") == 401
        assert fetch(f"{base}/health?token=wrong") == 401
        assert fetch(f"{base}/health?token=s3cret") == 200
        assert fetch(f"{base}/health", {"Authorization": "Bearer s3cret"}) == 200
        assert fetch(f"{base}/nothing?token=s3cret") == 404
    finally:
        server.close()


def test_histogram_buckets_are_cumulative_and_match_the_samples():
    histogram = LatencyHistogram()
    samples = np.random.default_rng(0).uniform(0.001, 0.2, 1000)
    for s in samples:
        histogram.add(float(s))
    bounds = [0.005, 0.01, 0.05, 0.1, 0.25]
    counts = histogram.cumulative(bounds)
    assert counts == sorted(counts) and counts[-1] == 1000
    expected = [(samples <= b).sum() for b in bounds]
    assert np.allclose(counts, expected, atol=0.03 * 1000)  # to the 2 % bin width

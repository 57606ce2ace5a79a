"""Faults injected into real runs (issue 13, defect 4 and "fault injection"): a disk that fills (a small
tmpfs), every sink failing, a source that stalls, a source that flaps, a broker that is gone.

A write failure ends the run with exit 4 and one line naming the file; the events file ends at its last
complete line, the summary is whole or absent, and the video plays up to its last whole fragment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edge.pipeline.sinks import EventsSink
from streams.writers import EventLog, VideoFileWriter, WriterError
from tests.helpers.runs import JsonLog, event_lines, start, video_frames
from tests.helpers.servers import MjpegCamera, free_port, mosquitto  # noqa: F401 (fixture)

VIDEO = "videos/bgslibrary_highway_traffic_320x240.avi"


@pytest.fixture
def small_disk(tmp_path):
    """A 192 KiB tmpfs: root only (CI runs as root); skipped elsewhere, with the reason."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("video", [True, False], ids=["with-video", "events-only"])
def test_a_full_disk_stops_the_run_at_the_last_complete_line(yolox_bundle, assets, small_disk, video):
    out = small_disk / "out"
    process = start("replay", assets / VIDEO, "--bundle", yolox_bundle.root, "--out", out,
                    *([] if video else ["--no-video"]))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 4, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"edge: error: {out}/") and "No space left on device" in line, line
    events = event_lines(out)  # every line parses, the last one included
    assert events
    if (out / "summary.json").exists():  # whole or absent: written atomically
        assert json.loads((out / "summary.json").read_text())["frames"] == len(events)
    if video:
        assert video_frames(out / "annotated.mp4") >= 1


def test_events_on_a_device_that_refuses_every_write_name_the_file():
    log = EventLog(Path("/dev/full"))
    with pytest.raises(WriterError, match=r"^/dev/full: cannot write \(No space left on device\)"):
        log.write('{"frame": 0}')
    log.close()


def test_a_video_on_a_device_that_refuses_every_write_names_the_file():
    writer = VideoFileWriter(Path("/dev/full"), 25.0)
    with pytest.raises(WriterError, match="^/dev/full: "):
        for _ in range(60):  # the first fragment is written once the second keyframe arrives
            writer.write(np.zeros((64, 64, 3), np.uint8))
        writer.close()


def test_a_cut_last_line_left_by_a_power_cut_is_removed_before_appending(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"frame": 0}\n{"frame": 1}\n{"fra')
    sink = EventsSink(path, append=True)
    sink.log.write('{"frame": 2}')
    sink.close()
    assert [json.loads(line)["frame"] for line in path.read_text().splitlines()] == [0, 1, 2]


def daemon(tmp_path, sources: str, extra: str = "") -> subprocess.Popen:
    config = tmp_path / "edge.yaml"
    config.write_text(f"sources: {sources}\nbundles: [{tmp_path / 'bundle'}]\nout: {tmp_path / 'out'}\n{extra}")
    return start("run", "--config", config)


def lost(records, stream):
    return [r for r in records if r["msg"] == "stream lost; reopening" and r["stream"] == stream]


def count(records, message):
    return sum(r["msg"] == message for r in records)


def test_a_stalling_camera_times_out_and_is_reopened(yolox_bundle, assets, tmp_path):
    """The server keeps the connection open but stops sending: the read timeout turns the stall into a lost
    stream, reopened; a file source beside it goes on; SIGTERM still stops the daemon promptly."""
    shutil.copytree(yolox_bundle.root, tmp_path / "bundle")
    camera = MjpegCamera(assets / VIDEO, stall_after=5).start()
    try:
        process = daemon(tmp_path, f"[{{url: '{camera.url}', name: cam, timeout_s: 1}}, {{url: {assets / VIDEO}, "
                                   f"name: file}}]", "video: false\nreconnect: {first_s: 0.1, cap_s: 0.2}\n")
        log = JsonLog(process)
        log.until(lambda r: len(lost(r, "cam")) >= 2)
        stopped_at = time.monotonic()
        log.stop()
        assert time.monotonic() - stopped_at < 15
    finally:
        camera.kill()
        process.kill()
    events = event_lines(tmp_path / "out")
    assert {"cam", "file"} <= {e["stream"] for e in events}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["streams"]["cam"]["reconnects"] >= 2


def test_a_flapping_camera_is_reopened_each_time_from_the_first_delay(yolox_bundle, assets, tmp_path):
    """Killed and restarted three times: each time it delivered frames, so each reopening starts again at
    ``first_s``; frame numbers keep counting."""
    shutil.copytree(yolox_bundle.root, tmp_path / "bundle")
    camera = MjpegCamera(assets / VIDEO).start()
    process = daemon(tmp_path, f"[{{url: '{camera.url}', name: cam, timeout_s: 1}}]",
                     "video: false\nreconnect: {first_s: 0.05, cap_s: 1.0}\n")
    log = JsonLog(process)
    try:
        for _ in range(3):
            opened = count(log.records, "stream open")
            log.until(lambda r, n=opened: count(r, "stream open") > n)
            time.sleep(1.0)  # frames arrive
            camera.kill()
            seen = len(lost(log.records, "cam"))
            log.until(lambda r, n=seen: len(lost(r, "cam")) > n)
            camera.start()
        records = log.stop()
    finally:
        camera.kill()
        process.kill()
    first_delays = []
    for record in records:
        if record["msg"] == "stream open":
            first_delays.append(None)
        elif record["msg"] == "stream lost; reopening" and first_delays and first_delays[-1] is None:
            first_delays[-1] = record["retry_in_s"]
    assert first_delays[:3] == [0.05, 0.05, 0.05]
    frames = [e["frame"] for e in event_lines(tmp_path / "out")]
    assert frames == sorted(set(frames))


def test_every_network_sink_failing_leaves_the_events_going(yolox_bundle, assets, tmp_path):
    """MQTT's broker is gone (a closed port) and the HTTP server is up: events are written all the same,
    and the daemon stops with 0."""
    shutil.copytree(yolox_bundle.root, tmp_path / "bundle")
    process = daemon(tmp_path, f"[{{url: {assets / VIDEO}}}]",
                     f"video: false\nmqtt: {{host: 127.0.0.1, port: {free_port()}}}\nhttp: {{port: {free_port()}}}\n")
    log = JsonLog(process)
    log.until(lambda r: count(r, "running") > 0)
    deadline = time.monotonic() + 60
    while len(event_lines(tmp_path / "out")) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    log.stop()
    assert len(event_lines(tmp_path / "out")) >= 20

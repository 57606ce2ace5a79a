"""Ctrl-C, SIGTERM and SIGKILL in the middle of ``edge replay`` and ``edge run`` (issue 13, defects 1 and 3).

Afterwards every ``events.jsonl`` line parses and the video plays with one frame per event; after Ctrl-C or
SIGTERM ``summary.json`` counts them too. Replay exits 130 (Ctrl-C) or 143 (SIGTERM), the shell's codes for
those signals; the daemon exits 0, as stopping is its normal end. After SIGKILL nothing can be finished:
the video (fragmented MP4, one fragment per second of frames) ends at its last whole fragment, at most one
fragment short of the events.
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.helpers.runs import Terminal, event_lines, start, video_frames, wait_for_lines

VIDEO = "videos/bgslibrary_highway_traffic_320x240.avi"  # 750 frames at 25 fps: still running when signalled
FRAGMENT = 25  # frames per fragment: one keyframe a second at the file's 25 fps


def assert_finished(out, summary_frames: bool = True):
    events = event_lines(out)
    assert len(events) >= 5
    assert video_frames(out / "annotated.mp4") == len(events)
    if summary_frames:
        summary = json.loads((out / "summary.json").read_text())
        assert summary["frames"] == len(events)
        return summary
    return None


def test_ctrl_c_in_a_terminal_stops_replay_and_keeps_everything(yolox_bundle, assets, tmp_path):
    out = tmp_path / "out"
    terminal = Terminal("replay", assets / VIDEO, "--bundle", yolox_bundle.root, "--out", out)
    wait_for_lines(out, 10, terminal.process)
    terminal.ctrl_c()
    assert terminal.wait(60) == 130, terminal.text
    summary = assert_finished(out)
    assert summary["stopped_by"] == "SIGINT"
    assert "Traceback" not in terminal.text
    # The terminal also shows the progress bar, redrawn with carriage returns, and the ^C it echoed.
    assert terminal.text.count("edge: error:") == 1
    assert f"edge: error: stopped by SIGINT: {summary['frames']} frames written to {out}\r\n" in terminal.text


def test_sigterm_stops_replay_with_143_and_keeps_everything(yolox_bundle, assets, tmp_path):
    out = tmp_path / "out"
    process = start("replay", assets / VIDEO, "--bundle", yolox_bundle.root, "--out", out)
    wait_for_lines(out, 10, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert assert_finished(out)["stopped_by"] == "SIGTERM"
    assert err.strip().splitlines()[-1].startswith("edge: error: stopped by SIGTERM")


def assert_killed_cleanly(out, *argv):
    """``edge ARGV`` killed with SIGKILL after two fragments: whole event lines, a video at most a fragment short."""
    process = start(*argv)
    wait_for_lines(out, 2 * FRAGMENT + 5, process)
    process.kill()
    process.communicate(timeout=60)
    events = event_lines(out)
    frames = video_frames(out / "annotated.mp4")
    assert len(events) - FRAGMENT <= frames <= len(events), (frames, len(events))
    assert frames >= FRAGMENT


def test_sigkill_during_replay_leaves_whole_lines_and_a_video_that_plays(yolox_bundle, assets, tmp_path):
    out = tmp_path / "out"
    assert_killed_cleanly(out, "replay", assets / VIDEO, "--bundle", yolox_bundle.root, "--out", out)
    assert not (out / "summary.json").exists()


def daemon_config(tmp_path, bundle, source) -> str:
    config = tmp_path / "edge.yaml"
    config.write_text(f"sources: [{{url: {source}}}]\nbundles: [{bundle.root}]\nout: {tmp_path / 'out'}\n")
    return str(config)


def test_ctrl_c_in_a_terminal_stops_the_daemon_with_0(yolox_bundle, assets, tmp_path):
    out = tmp_path / "out"
    terminal = Terminal("run", "--config", daemon_config(tmp_path, yolox_bundle, assets / VIDEO))
    wait_for_lines(out, 10, terminal.process)
    terminal.ctrl_c()
    assert terminal.wait(60) == 0, terminal.text
    assert assert_finished(out)["stopped_by"] == "SIGINT"
    # Every line is a JSON record; the terminal echoed ^C in front of one of them.
    logs = [json.loads(line.removeprefix("^C")) for line in terminal.text.splitlines()]
    assert {"stopping", "stopped"} <= {log["msg"] for log in logs}


def test_sigkill_of_the_daemon_leaves_a_video_that_plays(yolox_bundle, assets, tmp_path):
    assert_killed_cleanly(tmp_path / "out", "run", "--config", daemon_config(tmp_path, yolox_bundle, assets / VIDEO))


@pytest.mark.parametrize("pyav", [True, False], ids=["pyav", "opencv-fallback"])
def test_the_video_has_one_frame_per_event_with_either_writer(yolox_bundle, assets, tmp_path, monkeypatch, pyav):
    from edge.config import RunConfig
    from edge.replay import replay

    monkeypatch.setattr("streams.video.pyav_available", lambda: pyav)
    summary = replay(str(assets / "images"), RunConfig(bundles=[str(yolox_bundle.root)], out=str(tmp_path / "o")))
    assert video_frames(tmp_path / "o" / "annotated.mp4") == summary["frames"] == len(event_lines(tmp_path / "o"))

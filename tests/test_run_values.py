"""Values a run refuses before it starts (issue 13, defects 5, 6 and 8): out-of-range numbers, HTTP ports,
an earlier run in ``--out``. Each is exit 2 and one line naming the key or flag; nothing is written."""

from __future__ import annotations

import json
import socket

import pytest

from edge.cli import main
from tests.helpers.runs import event_lines

IMAGE = "images/fastestdet_people_indoor.jpg"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def one_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge: error: "), err
    return lines[0]


@pytest.mark.parametrize(("yaml", "key", "message"), [
    ("events: {max_mb: -1}", "events.max_mb", "must be more than 0"),
    ("events: {max_mb: 0}", "events.max_mb", "must be more than 0"),
    ("events: {backups: -2}", "events.backups", "must be at least 0"),
    ("reconnect: {first_s: 0}", "reconnect.first_s", "must be more than 0"),
    ("reconnect: {cap_s: -1}", "reconnect.cap_s", "must be more than 0"),
    ("reconnect: {cap_s: .inf}", "reconnect.cap_s", "expected a finite number"),
    ("http: {port: 99999}", "http.port", "must be at most 65535"),
    ("http: {port: -1}", "http.port", "must be at least 0"),
    ("http: {preview_fps: 0}", "http.preview_fps", "must be more than 0"),
    ("mqtt: {host: b, qos: 3}", "mqtt.qos", "must be at most 2"),
    ("mqtt: {host: b, topic: 'edge/{site}'}", "mqtt.topic", "only {device} and {stream}"),
    ("sources: [{url: /dev/video0, fps: -5}]", "sources[0].fps", "must be more than 0"),
    ("sources: [{url: /dev/video0, width: -640}]", "sources[0].width", "must be at least 1"),
    ("sources: [{url: /dev/video0, height: 0}]", "sources[0].height", "must be at least 1"),
    ("sources: [{url: /dev/video0, fps: .nan}]", "sources[0].fps", "expected a finite number"),
    ("sources: [{url: /dev/video0, fourcc: 'MJPEG!'}]", "sources[0].fourcc", "'MJPEG!' does not match"),
])
def test_out_of_range_config_values_are_refused(capsys, tmp_path, yolox_bundle, yaml, key, message):
    config = tmp_path / "edge.yaml"
    lines = [f"bundles: [{yolox_bundle.root}]", f"out: {tmp_path / 'out'}", yaml]
    if not yaml.startswith("sources:"):
        lines.append("sources: [{url: /dev/video0}]")
    config.write_text("\n".join(lines) + "\n")
    code, err = run(capsys, "run", "--config", config)
    assert code == 2
    line = one_line(err)
    assert "edge.yaml:" in line and f"{key}: {message}" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["-1", "99999", "http"])
def test_a_bad_http_port_flag_is_a_usage_error(capsys, yolox_bundle, tmp_path, value):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--source", "0", "--bundle", str(yolox_bundle.root), "--http-port", value])
    assert exit_.value.code == 2
    assert "argument --http-port: expected a port number 0..65535" in capsys.readouterr().err


def test_a_busy_http_port_is_a_usage_error_before_anything_is_written(capsys, yolox_bundle, assets, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run(capsys, "run", "--source", assets / IMAGE, "--bundle", yolox_bundle.root,
                        "--out", tmp_path / "out", "--http-port", port)
    assert code == 2
    assert one_line(err) == (f"edge: error: http.port (--http-port): cannot listen on 127.0.0.1:{port} "
                             f"(in use)")
    assert not (tmp_path / "out").exists()


def test_replay_refuses_an_earlier_run_in_out_and_touches_nothing(capsys, yolox_bundle, assets, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, "replay", assets / IMAGE, "--bundle", yolox_bundle.root, "--out", out)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = run(capsys, "replay", assets / IMAGE, "--bundle", yolox_bundle.root, "--out", out)
    assert code == 2
    assert "--out: " in one_line(err) and "holds an earlier run" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_replaces_the_whole_earlier_run(capsys, yolox_bundle, assets, tmp_path):
    """``--no-video`` over a run with video: the old ``annotated.mp4`` must not sit beside the new events."""
    out = tmp_path / "out"
    assert run(capsys, "replay", assets / "images", "--bundle", yolox_bundle.root, "--out", out)[0] == 0
    assert (out / "annotated.mp4").exists()
    assert run(capsys, "replay", assets / IMAGE, "--bundle", yolox_bundle.root, "--out", out, "--no-video",
               "--overwrite")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "summary.json"]
    assert len(event_lines(out)) == json.loads((out / "summary.json").read_text())["frames"] == 1


def test_a_restarted_daemon_appends_to_the_events_and_keeps_the_earlier_video(capsys, yolox_bundle, assets,
                                                                                tmp_path):
    out = tmp_path / "out"
    argv = ["run", "--source", assets / IMAGE, "--bundle", yolox_bundle.root, "--out", out]
    assert run(capsys, *argv)[0] == 0
    assert run(capsys, *argv)[0] == 0
    assert len(event_lines(out)) == 2
    videos = sorted(p.name for p in out.glob("annotated*.mp4"))
    assert len(videos) == 2 and "annotated.mp4" in videos

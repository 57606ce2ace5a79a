"""``edge run`` configuration: a typed schema, errors naming file, line and key, suggestions for typos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.config import load_config
from edge.daemon import source_specs
from edge.errors import UsageError
from streams.frame_queue import DropPolicy
from streams.sources import open_source

GOOD = """\
sources:
  - url: rtsp://127.0.0.1:8554/door
    name: door
  - url: 0
    width: 1280
    height: 720
    fps: 30
    fourcc: MJPG
  - url: /data/clip.mp4
bundles: [/opt/bundles/yolox_nano]
http: {port: 8080}
mqtt: {host: broker.local}
events: {max_mb: 10}
"""


def write(tmp_path, text):
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return path


def test_a_good_config_becomes_typed_specs(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.sources[1].url == "0" and config.sources[1].fps == 30.0 and config.mqtt.port == 1883
    door, camera, clip = source_specs(config)
    assert (door.name, camera.name, clip.name) == ("door", "camera0", "clip")
    assert door.reconnect and camera.reconnect and not clip.reconnect
    assert door.policy is camera.policy is clip.policy is DropPolicy.LATEST  # a file in the daemon plays live
    assert clip.realtime and not door.realtime
    assert (camera.settings.width, camera.settings.fourcc) == (1280, "MJPG")


@pytest.mark.parametrize(("text", "message"), [
    (GOOD.replace("    fps: 30", "    fsp: 30"), ":7: sources[1].fsp: unknown key; did you mean 'fps'?"),
    (GOOD.replace("width: 1280", "width: wide"), ":5: sources[1].width: expected a int, got 'wide'"),
    (GOOD.replace("  - url: /data/clip.mp4", "  - name: clip"), ":9: sources[2].url: required"),
    (GOOD.replace("http: {port: 8080}", "http: {port: 8080, host: 0.0.0.0}"), ":11: http.token: required when"),
    (GOOD + "decode: fibers\n", ":14: decode: 'fibers' is not one of thread, process"),
    (GOOD.replace("bundles: [/opt/bundles/yolox_nano]", "bundles: []"), ":10: bundles: needs at least one"),
    (GOOD + "sources: [\n", ":15: not valid YAML"),
    ("", ": the config is empty"),
])
def test_errors_name_file_line_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value), str(error.value)


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("bundles:", "bundels:"))
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edge: error: {path}:10: bundels: unknown key; did you mean 'bundles'?"]
    assert main(["run", "--source", "0"]) == 2


def test_daemon_and_open_source_name_a_stream_alike(tmp_path):
    """One naming function: a glob is named after the folder it searches, a folder after itself, a file after
    its stem; the daemon's names (chosen before anything opens) are the names the sources give themselves."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.jpg"), np.zeros((8, 8, 3), np.uint8))
    urls = [str(folder / "*.jpg"), str(folder), str(folder / "0.jpg")]
    config = write(tmp_path, "sources:\n" + "".join(f"  - url: '{u}'\n" for u in urls) + "bundles: [b]\n")
    specs = source_specs(load_config(config))
    opened = []
    for url in urls:
        with open_source(url) as source:
            opened.append(source.name)
    assert [s.name for s in specs] == ["frames", "frames-1", "0"]  # made unique, as events are keyed by name
    assert opened == ["frames", "frames", "0"]

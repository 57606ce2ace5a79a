"""What reaches stderr (issue 13, defect 12): a failing command prints one line, whatever the native libraries
would have said; the daemon's stderr is JSON lines only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.runs import start
from tests.helpers.servers import ROOT, free_port


def test_a_corrupt_video_is_one_line_without_ffmpeg_chatter(yolox_bundle, tmp_path):
    video = tmp_path / "corrupt.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(50_000))
    process = start("replay", video, "--bundle", yolox_bundle.root, "--out", tmp_path / "o")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3
    assert err.strip().splitlines() == [f"edge: error: {video}: cannot open as a video (unsupported format or "
                                        f"corrupt file)"]


def test_a_dead_camera_in_the_daemon_logs_json_lines_only(yolox_bundle, tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text(f"sources: [{{url: 'rtsp://127.0.0.1:{free_port()}/x', timeout_s: 1}}]\n"
                      f"bundles: [{yolox_bundle.root}]\nout: {tmp_path / 'out'}\n"
                      f"reconnect: {{first_s: 0.05, cap_s: 0.1}}\n")
    daemon = start("run", "--config", config)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "out").exists():
        time.sleep(0.1)
    time.sleep(2)  # some reopenings
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    assert sum(r["msg"] == "stream lost; reopening" for r in records) >= 3


WARN_THEN_FAIL = """
import warnings
import edge.replay
from edge.cli import main
from edge.errors import BadInputError

def noisy(source, config, **options):  # a command whose library warns, as torch does, then fails
    warnings.warn("torch.onnx: a UserWarning as torch prints them", UserWarning)
    raise BadInputError("model.pt: not a checkpoint")

edge.replay.replay = noisy
raise SystemExit(main(["replay", "x.mp4", "--bundle", "b"]))
"""


def test_python_warnings_do_not_add_lines_to_an_error(tmp_path):
    done = subprocess.run([sys.executable, "-c", WARN_THEN_FAIL], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == ["edge: error: model.pt: not a checkpoint"]


def test_onnx_runtime_sessions_edge_does_not_open_stay_quiet():
    """ONNX Runtime's quantization tools open their own calibration sessions, which warned on stderr about every
    unused initializer during `edge quantize`; after `quiet_native_logs` (what the edge command runs first) only
    its errors get through, and `--debug` brings its warnings back."""
    pytest.importorskip("onnx")  # to write the model; the runtime-only install has no onnx
    script = """
import sys
import onnxruntime
from onnx import TensorProto, helper
from edge.logs import quiet_native_logs

quiet_native_logs(debug=sys.argv[1] == "debug")
value = {name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in "xy"}
graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [value["x"]], [value["y"]],
                          [helper.make_tensor("unused", TensorProto.FLOAT, [1], [1.0])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
onnxruntime.InferenceSession(model.SerializeToString())
"""
    quiet, debug = (subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, cwd=ROOT,
                                   timeout=60) for mode in ("quiet", "debug"))
    assert quiet.returncode == debug.returncode == 0, quiet.stderr + debug.stderr
    assert quiet.stderr == ""
    assert "Removing initializer 'unused'" in debug.stderr

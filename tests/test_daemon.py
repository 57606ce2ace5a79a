"""``edge run`` as systemd runs it: a subprocess, real loopback servers, signals, the files it leaves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.servers import ROOT, camera, free_port, mosquitto, wait_for_port  # noqa: F401 (fixtures)


def start_daemon(tmp_path, config: str) -> subprocess.Popen:
    (tmp_path / "edge.yaml").write_text(config)
    return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(tmp_path / "edge.yaml")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(daemon: subprocess.Popen) -> tuple[int, str]:
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=60)
    return daemon.returncode, err


def events(out):
    path = out / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def metric(port, name, stream):
    for family in text_string_to_metric_families(get(port, "/metrics")):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("stream") == stream:
                return sample.value
    raise KeyError(name)


class Subscriber:
    """Collects the topics of every message on a real broker."""

    def __init__(self, port):
        import paho.mqtt.client as mqtt

        self.topics = []
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *a: (c.subscribe("edge/#"), self.connected.set())
        self.client.on_message = lambda c, u, m: self.topics.append((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(10)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.slow
def test_two_sources_reconnect_metrics_and_mqtt(yolox_bundle, assets, camera, mosquitto, tmp_path):  # noqa: F811
    """A network camera and a file in one daemon. The camera's server is killed: the file stream goes on.
    Restarted: the daemon reconnects, counts it, and events of both streams keep coming, also over MQTT."""
    out, port = tmp_path / "out", free_port()
    subscriber = Subscriber(mosquitto)
    daemon = start_daemon(tmp_path, f"""
sources:
  - url: {camera.url}
    name: door
    timeout_s: 2
  - url: {assets / 'videos/one-by-one-person-detection.mp4'}
    name: hall
bundles: [{yolox_bundle.root}]
out: {out}
video: false
device: unit-7
http: {{port: {port}}}
mqtt: {{host: 127.0.0.1, port: {mosquitto}}}
reconnect: {{first_s: 0.2, cap_s: 1.0}}
""")
    try:
        wait_until(lambda: {e["stream"] for e in events(out)} == {"door", "hall"}, what="events of both streams")
        camera.kill()
        wait_until(lambda: metric(port, "edge_reconnects_total", "door") >= 1, what="the reconnect counted")
        hall_before = metric(port, "edge_frames_total", "hall")
        wait_until(lambda: metric(port, "edge_frames_total", "hall") >= hall_before + 3, what="in-flight drained")
        door_before = metric(port, "edge_frames_total", "door")
        hall_before = metric(port, "edge_frames_total", "hall")
        wait_until(lambda: metric(port, "edge_frames_total", "hall") >= hall_before + 10, what="hall going on")
        assert metric(port, "edge_frames_total", "door") == door_before  # door is down meanwhile
        camera.start()
        wait_until(lambda: metric(port, "edge_frames_total", "door") >= door_before + 10, what="door back")
        status = json.loads(get(port, "/status.json"))["streams"]
        assert status["door"]["state"] == "streaming" and status["door"]["reconnects"] >= 1
        health = json.loads(get(port, "/health"))
        assert health["status"] == "ok"
        families = {f.name for f in text_string_to_metric_families(get(port, "/metrics"))}
        assert {"edge_frames", "edge_dropped_frames", "edge_reconnects", "edge_fps", "edge_stage_latency_seconds",
                "edge_backend_info"} <= families
    finally:
        code, err = stop(daemon)
        subscriber.close()
    assert code == 0, err
    lines = events(out)
    door = [e["frame"] for e in lines if e["stream"] == "door"]
    assert door == sorted(set(door))  # frame numbers keep counting across the reconnect
    assert any(json.loads(line)["msg"] == "stream lost; reopening" for line in err.splitlines()
               if line.startswith("{"))
    topics = {topic for topic, _ in subscriber.topics}
    assert {"edge/unit-7/door/events", "edge/unit-7/hall/events"} <= topics
    assert all(doc["device"] == "unit-7" and "results" in doc for _, doc in subscriber.topics)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["streams"]["door"]["reconnects"] >= 1


def test_sigterm_finalises_video_and_events(yolox_bundle, assets, tmp_path):
    """SIGTERM mid-run: exit 0, the video plays and has one frame per event, the last event line is whole."""
    out = tmp_path / "out"
    daemon = start_daemon(tmp_path, f"""
sources: [{{url: {assets / 'videos/bgslibrary_highway_traffic_320x240.avi'}}}]
bundles: [{yolox_bundle.root}]
out: {out}
perf_s: 0.2
""")
    wait_until(lambda: len(events(out)) >= 20, what="events")
    code, err = stop(daemon)
    assert code == 0, err
    text = (out / "events.jsonl").read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    json.loads(lines[-1])
    video = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(lines)
    assert video.read()[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == len(lines)
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(record["msg"] == "stopping" for record in logged)
    perf = [record for record in logged if record["msg"] == "perf"]  # DeepStream's **PERF, one line per stream
    assert perf and all(r["stream"] == "bgslibrary_highway_traffic_320x240" and r["fps"] >= 0 for r in perf)
    assert perf[-1]["frames"] >= 1 and perf[-1]["fps_avg"] > 0 and {"dropped", "latency_ms"} <= set(perf[-1])


def test_sd_notify_ready_watchdog_stopping(yolox_bundle, assets, tmp_path):
    """Under systemd (a NOTIFY_SOCKET we listen on): READY=1, then WATCHDOG=1 pings, then STOPPING=1."""
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    daemon = subprocess.Popen([sys.executable, "-m", "edge", "run", "--source",
                               str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"),
                               "--bundle", str(yolox_bundle.root), "--out", str(tmp_path / "out"), "--no-video"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    messages = []
    try:
        while messages.count("WATCHDOG=1") < 2:
            messages.extend(listener.recv(4096).decode().splitlines())
    finally:
        code, err = stop(daemon)
    listener.settimeout(5)
    while "STOPPING=1" not in messages:
        messages.extend(listener.recv(4096).decode().splitlines())
    assert code == 0, err
    assert messages.index("READY=1") < messages.index("WATCHDOG=1") < messages.index("STOPPING=1")


def test_config_error_names_file_line_and_key(tmp_path, yolox_bundle):
    daemon = start_daemon(tmp_path, f"""
sources:
  - url: /dev/video0
  - nmae: door
bundles: [{yolox_bundle.root}]
""")
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 2
    assert err.strip().splitlines() == [f"edge: error: {tmp_path / 'edge.yaml'}:4: sources[1].nmae: unknown key; "
                                        f"did you mean 'name'?"]

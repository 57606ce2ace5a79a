"""``edge doctor``'s machine facts (edge/machine.py) from the files a Jetson and a PC have, and ``--json``."""

from __future__ import annotations

import json
import stat

import pytest

from edge import machine
from edge.cli import main
from edge.cuda_info import CudaInfo, Gpu

ORIN = Gpu("Orin", "8.7", 30000)
NANO = Gpu("NVIDIA Tegra X1", "5.3", 4000)


def test_memory_and_swap_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       7999788 kB\nMemFree:         900000 kB\nMemAvailable:    5242880 kB\n"
                       "SwapTotal:       3999892 kB\nSwapFree:        3999000 kB\n")
    assert machine.memory(meminfo) == {"total_mib": 7812, "available_mib": 5120, "swap_total_mib": 3906,
                                       "swap_free_mib": 3905}
    assert machine.memory(tmp_path / "missing") is None
    assert machine.memory()["total_mib"] > 0  # this machine's own


def test_dla_cores_by_device_node(tmp_path):
    for name in ("nvhost-ctrl-nvdla0", "nvhost-ctrl-nvdla1", "nvhost-nvdla0", "nvhost-nvdla1", "nvhost-gpu", "null"):
        (tmp_path / name).touch()
    assert machine.dla_cores(tmp_path) == 2  # JetPack 6's and earlier names of the same two engines
    assert machine.dla_cores(tmp_path / "missing") == 0


def test_cameras_with_their_driver_names(tmp_path):
    for index, name in ((10, "vi-output, imx219 9-0010"), (2, "HD Pro Webcam C920")):
        (tmp_path / f"video{index}").mkdir()
        (tmp_path / f"video{index}" / "name").write_text(name + "\n")
    assert machine.cameras(tmp_path) == [{"device": "/dev/video2", "name": "HD Pro Webcam C920"},
                                         {"device": "/dev/video10", "name": "vi-output, imx219 9-0010"}]
    assert machine.cameras(tmp_path / "missing") == []


def test_codec_elements_asked_of_gstreamer(tmp_path, monkeypatch):
    inspect = tmp_path / "gst-inspect-1.0"  # answers as the real tool does: exit 0 for an element it has
    inspect.write_text('#!/bin/sh\n[ "$1" = --exists ] && case "$2" in nvv4l2decoder|nvvidconv) exit 0;; esac\n'
                       "exit 1\n")
    inspect.chmod(inspect.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = machine.codec_elements()
    assert found == {name: name in ("nvv4l2decoder", "nvvidconv") for name in machine.CODEC_ELEMENTS}
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert machine.codec_elements() is None


@pytest.mark.parametrize(("gpu", "expected"), [(ORIN, ["fp16", "int8"]), (NANO, ["fp16"]),
                                               (Gpu("TX2", "6.2", 8000), ["fp16"]), (Gpu("P4", "6.1", 8000), ["int8"])])
def test_fast_precisions_by_compute_capability(gpu, expected):
    assert machine.fast_precisions(gpu) == expected


def test_verdicts():
    with_gpu = CudaInfo("12.6", "12.6", (ORIN,))
    assert machine.verdict("10.3.0", "2024.1", with_gpu, ["CPUExecutionProvider"], 2) == \
        "TensorRT fp16+int8 available (10.3.0 on Orin, 2 DLA cores)"
    assert machine.verdict("8.2.1", "2022.1", CudaInfo("10.2", "10.2", (NANO,)), [], 0) == \
        "TensorRT fp16 available (8.2.1 on NVIDIA Tegra X1)"
    assert machine.verdict("10.3.0", None, with_gpu, ["CPUExecutionProvider"], 0) == \
        "ONNX Runtime on the CPU only: pycuda is not installed (pip install 'edge[gpu]')"
    no_gpu = CudaInfo(None, None, (), "no CUDA driver (libcuda) found")
    assert machine.verdict(None, None, no_gpu, ["CPUExecutionProvider"], 0) == \
        "ONNX Runtime on the CPU only: TensorRT is not installed (it comes with JetPack); no CUDA GPU (no CUDA " \
        "driver (libcuda) found)"
    assert machine.verdict(None, None, with_gpu, ["CUDAExecutionProvider"], 0).startswith(
        "ONNX Runtime on the GPU through CUDAExecutionProvider: TensorRT is not installed")


def test_doctor_json(capsys):
    assert main(["doctor", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {"checks", "memory", "disk", "cudnn", "dla_cores", "codecs", "cameras", "verdict"} <= set(found)
    assert found["checks"]["edge"] and found["memory"]["total_mib"] > 0 and found["disk"]["free_mib"] > 0
    assert isinstance(found["verdict"], str) and found["verdict"].split()[0] in ("TensorRT", "ONNX")
    assert main(["doctor"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("verdict")

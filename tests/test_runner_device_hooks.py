"""The runner hands a frame to the backend's own device path where the backend offers one (TensorRT's GPU
preprocessing and class map, see ``Backend.preprocess_frame``/``class_map``), and keeps the CPU path where
the input is shared or the hook declines. The double below is ONNX Runtime doing the hooks' work on the
host, so the results can be compared with the plain CPU path pixel for pixel."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge.backends import EXTRA_BACKENDS
from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.graph import RunnerGraph
from edge.preprocess import Preprocessor
from edge.runner import Runner


class DeviceHooks(OnnxRuntimeBackend):
    name = "device-hooks"
    on_device = True
    calls: dict[str, int] = {}

    def preprocess_frame(self, slot, index, image, spec):
        DeviceHooks.calls["preprocess"] = DeviceHooks.calls.get("preprocess", 0) + 1
        return Preprocessor(spec)(image, slot.inputs[spec.name][index])

    def class_map(self, slot, index, output, transform, spec):
        DeviceHooks.calls["class_map"] = DeviceHooks.calls.get("class_map", 0) + 1
        return self.reference(slot.outputs, transform).class_map


@pytest.fixture()
def device_backend(monkeypatch):
    def open_hooks(bundle, *, slots=1, threads=None):
        return DeviceHooks(bundle.file("model"), input_shapes={bundle.input.name: bundle.input.shape}, slots=slots,
                           threads=threads)

    monkeypatch.setitem(EXTRA_BACKENDS, "device-hooks", open_hooks)
    DeviceHooks.calls = {}
    return "device-hooks"


@pytest.fixture(scope="module")
def frame(assets):
    return cv2.imread(str(assets / "images/fastestdet_people_indoor.jpg"))


def test_device_preprocessing_and_class_map_give_the_cpu_results(device_backend, espnet_bundle, frame):
    cpu = Runner(espnet_bundle, "onnxruntime", threads=1)
    device = Runner(espnet_bundle, device_backend, threads=1)
    device.backend.reference = cpu.decoder
    expected, found = cpu(frame), device(frame)
    assert DeviceHooks.calls == {"preprocess": 1, "class_map": 1}
    np.testing.assert_array_equal(found.class_map, expected.class_map)
    assert found.fractions().tolist() == expected.fractions().tolist()


def test_a_shared_input_is_preprocessed_on_the_host(device_backend, espnet_bundle, frame):
    twin = replace(espnet_bundle, name="espnet_twin")
    graph = RunnerGraph([espnet_bundle, twin], device_backend, threads=1)
    for runner in graph.runners:
        runner.backend.reference = runner.decoder
    results = graph(frame)
    assert "preprocess" not in DeviceHooks.calls  # the twin copies the host buffer: the device path is skipped
    np.testing.assert_array_equal(results["espnet_twin"].class_map, results[espnet_bundle.name].class_map)


def test_a_declining_hook_falls_back_to_the_cpu(device_backend, monkeypatch, yolox_bundle, frame):
    monkeypatch.setattr(DeviceHooks, "preprocess_frame", lambda *args: None)
    found = Runner(yolox_bundle, device_backend, threads=1)(frame)
    expected = Runner(yolox_bundle, "onnxruntime", threads=1)(frame)
    assert len(found) == len(expected) > 0 and "class_map" not in DeviceHooks.calls  # detection: no class map
    np.testing.assert_allclose(found.boxes, expected.boxes)

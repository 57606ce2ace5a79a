"""A deliberately slow backend, for latency tests: the real ONNX Runtime backend plus a fixed sleep in
``submit``, standing for a model slower than the camera. It is a test double, not a model."""

from __future__ import annotations

import time

from edge.backends import EXTRA_BACKENDS
from edge.backends.onnxruntime import OnnxRuntimeBackend


class SlowBackend(OnnxRuntimeBackend):
    name = "slow"
    delay_s = 0.12

    def submit(self, slot) -> None:
        time.sleep(self.delay_s)
        super().submit(slot)


def open_slow(bundle, *, slots=1, threads=None):
    spec = bundle.input
    return SlowBackend(bundle.file("model"), input_shapes={spec.name: spec.shape}, slots=slots, threads=threads)


EXTRA_BACKENDS["slow"] = open_slow

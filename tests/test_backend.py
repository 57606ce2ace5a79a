"""The ONNX Runtime backend: named I/O, explicit threads, buffers bound once and reused across frames."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnxruntime as ort
import pytest

from edge.backends import open_backend
from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.errors import UsageError


def test_outputs_are_written_into_the_same_buffers(yolox_bundle):
    backend = OnnxRuntimeBackend(yolox_bundle.file("model"), threads=1, slots=2)
    assert backend.threads == 1
    assert [i.name for i in backend.inputs] == ["images"] and [o.name for o in backend.outputs] == ["output"]
    reference = ort.InferenceSession(str(yolox_bundle.file("model")), providers=["CPUExecutionProvider"])
    slot = backend.slots[0]
    buffer_in, buffer_out = slot.inputs["images"], slot.outputs["output"]
    rng = np.random.default_rng(0)
    previous = None
    for _ in range(2):
        buffer_in[:] = rng.uniform(0, 255, buffer_in.shape)
        outputs = backend.run(slot)
        assert outputs["output"] is buffer_out and slot.inputs["images"] is buffer_in
        expected = reference.run(None, {"images": buffer_in})[0]
        np.testing.assert_allclose(outputs["output"], expected, rtol=1e-5, atol=1e-4)
        if previous is not None:
            assert not np.allclose(previous, outputs["output"])
        previous = outputs["output"].copy()
    # slots are independent buffer sets: running slot 1 leaves slot 0's results alone
    backend.slots[1].inputs["images"][:] = 0
    backend.run(backend.slots[1])
    np.testing.assert_array_equal(slot.outputs["output"], previous)
    backend.close()


def test_outputs_with_run_time_shapes(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NonZero", ["x"], ["where"])], "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("where", TensorProto.INT64, [4, "n"])])
    path = tmp_path / "nonzero.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    backend = OnnxRuntimeBackend(path)
    slot = backend.slots[0]
    for count in (3, 7):
        slot.inputs["x"][:] = 0
        slot.inputs["x"].reshape(-1)[:count] = 1
        assert backend.run(slot)["where"].shape == (4, count)


def test_unknown_or_unavailable_backend(yolox_bundle):
    with pytest.raises(UsageError, match="unknown backend"):
        open_backend(yolox_bundle, "openvino")
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(UsageError, match="--backend tensorrt: TensorRT is not installed"):
            open_backend(yolox_bundle, "tensorrt")


def test_partial_batches_bind_views_made_once(tmp_path, monkeypatch):
    """A partial batch runs on views of the slot's first items (the outputs of those items alone), and the
    OrtValues over them are made on the first run of each size only."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0, axes=[1])], "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"])])
    path = tmp_path / "sum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), path)
    backend = OnnxRuntimeBackend(path, batch=4)
    slot = backend.slots[0]
    slot.inputs["x"][:] = np.arange(12, dtype=np.float32).reshape(4, 3)
    made, from_numpy = [], ort.OrtValue.ortvalue_from_numpy

    def counted(array):
        made.append(array.shape)
        return from_numpy(array)

    monkeypatch.setattr(ort.OrtValue, "ortvalue_from_numpy", counted)
    for _ in range(3):
        assert backend.run_first(slot, 2)["total"].tolist() == [3, 12]
        assert backend.run_first(slot, 3)["total"].tolist() == [3, 12, 21]
        assert backend.run_first(slot, 4)["total"].tolist() == [3, 12, 21, 30]
    assert made == [(2, 3), (3, 3)]
    backend.close()

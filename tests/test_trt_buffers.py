"""Buffer planning from an engine's tensor descriptions (static, dynamic batch and H/W, profile limits, dtypes).

The engines are the strict stand-in's (tests/fake_tensorrt.py): name-based description calls, ``DataType``
members and execution contexts that resolve output shapes only once the input shapes are set, as TensorRT's
do. They describe tensors; they run nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from fake_tensorrt import EngineSpec, Tensor, load_engine, make_tensorrt

from edge.backends.trt_buffers import Buffer, TensorDesc, describe_tensors, plan_buffers, plan_inputs
from edge.errors import BadInputError

TRT = make_tensorrt("10.3.0")
PROFILE = ((1, 3, 416, 416), (2, 3, 416, 416), (4, 3, 416, 416))
DYNAMIC = load_engine(TRT, EngineSpec([Tensor("images", (-1, 3, 416, 416), profile=PROFILE)],
                                      [Tensor("output", (-1, 3549, 85)), Tensor("count", (-1,), "INT32")]))


def resolve(engine, inputs):
    """What the backend does: set the input shapes on an execution context, read the outputs' there."""
    context = engine.create_execution_context()
    for name, shape in inputs.items():
        if -1 in engine.get_tensor_shape(name):
            assert context.set_input_shape(name, shape)
    return {engine.get_tensor_name(i): tuple(context.get_tensor_shape(engine.get_tensor_name(i)))
            for i in range(engine.num_io_tensors)}


def plan(engine, requested):
    tensors = describe_tensors(engine, TRT)
    inputs = plan_inputs(tensors, requested)
    return plan_buffers(tensors, inputs, resolve(engine, inputs))


def test_describes_tensors_in_engine_order_with_profiles():
    tensors = describe_tensors(DYNAMIC, TRT)
    assert [(t.name, t.is_input, t.shape) for t in tensors] == [
        ("images", True, (-1, 3, 416, 416)), ("output", False, (-1, 3549, 85)), ("count", False, (-1,))]
    assert tensors[0].profile == PROFILE
    assert tensors[1].profile is None and tensors[2].dtype == np.int32
    assert tensors[0].info().shape == (None, 3, 416, 416)


def test_dynamic_batch_takes_the_bundle_shape_and_outputs_follow():
    buffers = plan(DYNAMIC, {"images": (1, 3, 416, 416)})
    assert buffers == (Buffer("images", True, (1, 3, 416, 416), np.dtype(np.float32)),
                       Buffer("output", False, (1, 3549, 85), np.dtype(np.float32)),
                       Buffer("count", False, (1,), np.dtype(np.int32)))
    assert buffers[1].nbytes == 3549 * 85 * 4


def test_without_a_request_the_profile_optimum_is_used():
    assert [b.shape for b in plan(DYNAMIC, {})] == [(2, 3, 416, 416), (2, 3549, 85), (2,)]


def test_outputs_that_follow_a_dynamic_height_and_width_are_planned():
    """Defect 4: outputs were sized from the engine's shapes, where a dimension that follows a dynamic input
    H/W is -1, so a fully convolutional model was refused as 'data-dependent'."""
    profile = ((1, 3, 256, 256), (1, 3, 384, 384), (1, 3, 512, 512))
    engine = load_engine(TRT, EngineSpec(
        [Tensor("image", (1, 3, -1, -1), profile=profile)],
        [Tensor("logits", (1, 21, -1, -1), follows=lambda s: (1, 21, s["image"][2] // 8, s["image"][3] // 8))]))
    assert [b.shape for b in plan(engine, {"image": (1, 3, 384, 512)})] == [(1, 3, 384, 512), (1, 21, 48, 64)]


@pytest.mark.parametrize("shape", [(8, 3, 416, 416), (1, 3, 640, 640), (1, 3, 416)])
def test_requests_outside_the_profile_are_refused(shape):
    with pytest.raises(BadInputError, match="input 'images'.*outside the engine's profile"):
        plan_inputs(describe_tensors(DYNAMIC, TRT), {"images": shape})


def test_static_engines_keep_their_shapes_and_refuse_others():
    tensors = (TensorDesc("x", True, (1, 3, 64, 64), np.dtype(np.uint8)),
               TensorDesc("y", False, (1, 10), np.dtype(np.float16)))
    inputs = plan_inputs(tensors, {"x": (1, 3, 64, 64)})
    assert [b.shape for b in plan_buffers(tensors, inputs, {"y": (1, 10)})] == [(1, 3, 64, 64), (1, 10)]
    with pytest.raises(BadInputError, match="differs from the engine's"):
        plan_inputs(tensors, {"x": (1, 3, 32, 32)})


def test_data_dependent_outputs_are_refused():
    engine = load_engine(TRT, EngineSpec([Tensor("x", (1, 3, 64, 64))],
                                         [Tensor("boxes", (1, -1, 4), follows=lambda s: (1, -1, 4))]))
    with pytest.raises(BadInputError, match="output 'boxes' has a data-dependent shape"):
        plan(engine, {})


@pytest.mark.parametrize("dtype", ["BF16", "FP8", "INT4"])
def test_tensors_numpy_cannot_hold_are_a_bad_input(dtype):
    """Defect 5: trt.nptype raises TypeError for these, which open_backend did not catch, so --backend auto
    aborted instead of falling back to ONNX Runtime."""
    engine = load_engine(TRT, EngineSpec([Tensor("x", (1, 3, 64, 64))], [Tensor("y", (1, 10), dtype)]))
    with pytest.raises(TypeError):
        TRT.nptype(engine.get_tensor_dtype("y"))  # what the stand-in's nptype does, as the real one
    with pytest.raises(BadInputError, match=f"tensor 'y' is {dtype}, which has no NumPy type"):
        describe_tensors(engine, TRT)


def test_trt_8_5_dtypes_do_not_depend_on_numpy_aliases():
    """TensorRT 8.5's own nptype reads np.bool, which NumPy 1.24-1.26 lack; edge maps DataType names itself."""
    old = make_tensorrt("8.5.2.2")
    engine = load_engine(old, EngineSpec([Tensor("x", (1, 3, 64, 64))], [Tensor("mask", (1, 64), "BOOL")]))
    assert [t.dtype for t in describe_tensors(engine, old)] == [np.dtype(np.float32), np.dtype(np.bool_)]

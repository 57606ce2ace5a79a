"""Buffer planning from an engine's tensor descriptions (static, dynamic batch, profile limits).

``FakeEngine`` answers only the name-based description calls (``num_io_tensors``, ``get_tensor_*``) that
``describe_tensors`` makes; it stands in for an engine's metadata, it runs nothing.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edge.backends.trt_buffers import Buffer, TensorDesc, describe_tensors, plan_buffers
from edge.errors import BadInputError

INPUT, OUTPUT = "INPUT", "OUTPUT"
FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT=INPUT, OUTPUT=OUTPUT), nptype=np.dtype)


class FakeEngine:
    def __init__(self, *tensors):
        self.tensors = tensors  # (name, mode, shape, dtype, profile or None)

    @property
    def num_io_tensors(self):
        return len(self.tensors)

    def get_tensor_name(self, index):
        return self.tensors[index][0]

    def _find(self, name):
        return next(t for t in self.tensors if t[0] == name)

    def get_tensor_mode(self, name):
        return self._find(name)[1]

    def get_tensor_shape(self, name):
        return list(self._find(name)[2])

    def get_tensor_dtype(self, name):
        return self._find(name)[3]

    def get_tensor_profile_shape(self, name, profile_index):
        assert profile_index == 0
        return [list(s) for s in self._find(name)[4]]


DYNAMIC = FakeEngine(("images", INPUT, (-1, 3, 416, 416), "float32", ((1, 3, 416, 416), (2, 3, 416, 416),
                                                                       (4, 3, 416, 416))),
                     ("output", OUTPUT, (-1, 3549, 85), "float32", None),
                     ("count", OUTPUT, (-1,), "int32", None))


def test_describes_tensors_in_engine_order_with_profiles():
    tensors = describe_tensors(DYNAMIC, FAKE_TRT)
    assert [(t.name, t.is_input, t.shape) for t in tensors] == [
        ("images", True, (-1, 3, 416, 416)), ("output", False, (-1, 3549, 85)), ("count", False, (-1,))]
    assert tensors[0].profile == ((1, 3, 416, 416), (2, 3, 416, 416), (4, 3, 416, 416))
    assert tensors[1].profile is None and tensors[2].dtype == np.int32
    assert tensors[0].info().shape == (None, 3, 416, 416)


def test_dynamic_batch_takes_the_bundle_shape_and_outputs_follow():
    plan = plan_buffers(describe_tensors(DYNAMIC, FAKE_TRT), {"images": (1, 3, 416, 416)})
    assert plan == (Buffer("images", True, (1, 3, 416, 416), np.dtype(np.float32)),
                    Buffer("output", False, (1, 3549, 85), np.dtype(np.float32)),
                    Buffer("count", False, (1,), np.dtype(np.int32)))
    assert plan[1].nbytes == 3549 * 85 * 4


def test_without_a_request_the_profile_optimum_is_used():
    plan = plan_buffers(describe_tensors(DYNAMIC, FAKE_TRT), {})
    assert [b.shape for b in plan] == [(2, 3, 416, 416), (2, 3549, 85), (2,)]


@pytest.mark.parametrize("shape", [(8, 3, 416, 416), (1, 3, 640, 640), (1, 3, 416)])
def test_requests_outside_the_profile_are_refused(shape):
    with pytest.raises(BadInputError, match="input 'images'.*outside the engine's profile"):
        plan_buffers(describe_tensors(DYNAMIC, FAKE_TRT), {"images": shape})


def test_static_engines_keep_their_shapes_and_refuse_others():
    tensors = (TensorDesc("x", True, (1, 3, 64, 64), np.dtype(np.uint8)),
               TensorDesc("y", False, (1, 10), np.dtype(np.float16)))
    assert [b.shape for b in plan_buffers(tensors, {"x": (1, 3, 64, 64)})] == [(1, 3, 64, 64), (1, 10)]
    with pytest.raises(BadInputError, match="differs from the engine's"):
        plan_buffers(tensors, {"x": (1, 3, 32, 32)})


def test_data_dependent_outputs_are_refused():
    tensors = (TensorDesc("x", True, (1, 3, 64, 64), np.dtype(np.float32)),
               TensorDesc("boxes", False, (1, -1, 4), np.dtype(np.float32)))
    with pytest.raises(BadInputError, match="output 'boxes' has a data-dependent shape"):
        plan_buffers(tensors, {})

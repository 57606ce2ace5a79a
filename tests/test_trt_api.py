"""Version dispatch: which network flags, builder flags and calibration each TensorRT release gets.

Only version strings go in: this checks edge's decisions, not TensorRT (which is not installed here).
"""

from __future__ import annotations

import pytest

from edge.backends.trt_api import BuildRecipe, TrtApi, build_recipe
from edge.errors import UsageError

JETPACK_5_1 = "8.5.2.2"
JETPACK_6_0 = "8.6.2.3"
JETPACK_6_1 = "10.3.0"
TRT_11 = "11.0.0.114"


@pytest.mark.parametrize("text, version", [("8.5.2.2", (8, 5, 2)), ("10.3.0", (10, 3, 0)), ("11.1", (11, 1)),
                                           (" 10.16.1.post1", (10, 16, 1))])
def test_parses_version_strings(text, version):
    assert TrtApi.parse(text).version == version


@pytest.mark.parametrize("text", ["8.2.1.8", "7.1.3"])
def test_refuses_releases_without_the_name_based_api(text):
    with pytest.raises(UsageError, match="older than 8.5"):
        TrtApi.parse(text)


def test_refuses_unreadable_versions():
    with pytest.raises(UsageError, match="cannot read"):
        TrtApi.parse("unknown")


@pytest.mark.parametrize("text, flags", [(JETPACK_5_1, ("EXPLICIT_BATCH",)), (JETPACK_6_0, ("EXPLICIT_BATCH",)),
                                         (JETPACK_6_1, ()), (TRT_11, ())])
def test_explicit_batch_only_before_10(text, flags):
    assert TrtApi.parse(text).network_flags == flags


@pytest.mark.parametrize("text", [JETPACK_5_1, JETPACK_6_0, JETPACK_6_1])
@pytest.mark.parametrize("precision, qdq, flags, calibrate", [
    ("fp32", False, (), False),
    ("fp16", False, ("FP16",), False),
    ("int8", True, ("INT8", "FP16"), False),
    ("int8", False, ("INT8", "FP16"), True),
])
def test_weakly_typed_releases_use_precision_flags(text, precision, qdq, flags, calibrate):
    recipe = build_recipe(TrtApi.parse(text), precision, has_qdq=qdq, has_fp16_tensors=False)
    assert recipe.builder_flags == flags and recipe.calibrate is calibrate


@pytest.mark.parametrize("precision, qdq, fp16_tensors", [("fp32", False, False), ("fp16", False, True),
                                                          ("int8", True, False), ("int8", True, True)])
def test_strongly_typed_release_sets_no_precision_flag(precision, qdq, fp16_tensors):
    recipe = build_recipe(TrtApi.parse(TRT_11), precision, has_qdq=qdq, has_fp16_tensors=fp16_tensors)
    assert recipe.builder_flags == () and not recipe.calibrate


@pytest.mark.parametrize("precision, qdq, fp16_tensors, message", [
    ("int8", False, False, "no INT8 calibration"),
    ("fp16", False, False, "no FP16 flag"),
    ("fp32", False, True, "holds fp16 tensors"),
])
def test_strongly_typed_release_needs_the_precision_in_the_onnx(precision, qdq, fp16_tensors, message):
    with pytest.raises(UsageError, match=message):
        build_recipe(TrtApi.parse(TRT_11), precision, has_qdq=qdq, has_fp16_tensors=fp16_tensors)


@pytest.mark.parametrize("text", [JETPACK_5_1, JETPACK_6_1, TRT_11])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_quantized_onnx_builds_only_as_int8(text, precision):
    with pytest.raises(UsageError, match="--precision int8"):
        build_recipe(TrtApi.parse(text), precision, has_qdq=True, has_fp16_tensors=False)


@pytest.mark.parametrize("text", [JETPACK_5_1, JETPACK_6_1])
def test_dla_adds_gpu_fallback(text):
    recipe = build_recipe(TrtApi.parse(text), "fp16", has_qdq=False, has_fp16_tensors=False, dla_core=1)
    assert recipe.builder_flags == ("FP16", "GPU_FALLBACK")


def test_dla_needs_reduced_precision():
    with pytest.raises(UsageError, match="fp16 or int8 only"):
        build_recipe(TrtApi.parse(JETPACK_6_1), "fp32", has_qdq=False, has_fp16_tensors=False, dla_core=0)


def test_trt_11_keeps_dla():
    """Defect 10: 11.0's bindings still have DeviceType.DLA, IBuilderConfig.DLA_core and GPU_FALLBACK (see
    tests/tensorrt_members.json); DLA builds are strongly typed there, like every other."""
    recipe = build_recipe(TrtApi.parse(TRT_11), "int8", has_qdq=True, has_fp16_tensors=False, dla_core=0)
    assert recipe == BuildRecipe(("GPU_FALLBACK",), calibrate=False)


def test_unknown_precision():
    with pytest.raises(UsageError, match="'bf16' is not one of"):
        build_recipe(TrtApi.parse(JETPACK_6_1), "bf16", has_qdq=False, has_fp16_tensors=False)

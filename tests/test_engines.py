"""Engine names, tags and mismatch detection: an engine is used only where it was built for.

The plans written here are placeholder bytes: these tests check naming and bookkeeping, not TensorRT.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from edge.engines import (
    EngineOptions,
    EngineTag,
    ProfileShape,
    Target,
    list_engines,
    mismatches,
    read_tag,
    tag_path,
    write_engine,
)
from edge.errors import BadInputError, EdgeError

ORIN = Target("10.3.0", "8.7", "Orin", "NVIDIA Jetson AGX Orin Developer Kit")
SHAPE = (1, 3, 416, 416)
ONNX_SHA = "a" * 64


def make_tag(**changes) -> EngineTag:
    tag = EngineTag("yolox", ONNX_SHA, ORIN, EngineOptions("fp16"), (ProfileShape("images", SHAPE, SHAPE, SHAPE),))
    return dataclasses.replace(tag, **changes)


def check(path, tag, **changes):
    facts = {"onnx_sha256": ONNX_SHA, "target": ORIN, "input_shapes": {"images": SHAPE}, **changes}
    return mismatches(path, tag, **facts)


def test_name_is_readable_and_keyed():
    name = make_tag().file_name()
    assert name.startswith("yolox.fp16.trt10.3.0.sm87.") and name.endswith(".engine")
    assert len(name.split(".")[-2]) == 12
    dla = make_tag(options=EngineOptions("int8", dla_core=1)).file_name()
    assert dla.startswith("yolox.int8.trt10.3.0.sm87.dla1.")


@pytest.mark.parametrize("change", [
    {"onnx_sha256": "b" * 64},
    {"target": dataclasses.replace(ORIN, tensorrt="10.3.1")},
    {"target": dataclasses.replace(ORIN, compute_capability="7.2")},
    {"target": dataclasses.replace(ORIN, device_model="NVIDIA Jetson Orin Nano Developer Kit")},
    {"options": EngineOptions("int8")},
    {"options": EngineOptions("fp16", dla_core=0)},
    {"profile": (ProfileShape("images", (1, 3, 416, 416), SHAPE, (4, 3, 416, 416)),)},
    {"calibration_sha256": "c" * 64},
])
def test_everything_that_changes_the_plan_changes_the_key(change):
    assert make_tag(**change).key != make_tag().key


def test_workspace_and_dates_do_not_change_the_key():
    assert make_tag(options=EngineOptions("fp16", workspace_mib=1024), created="2030-01-01").key == make_tag().key


def test_written_engine_round_trips_and_matches(tmp_path):
    path = write_engine(tmp_path / "engines", make_tag(), b"plan bytes")
    assert path.name == make_tag().file_name() and path.read_bytes() == b"plan bytes"
    tag = read_tag(path)
    assert tag == dataclasses.replace(make_tag(), plan_sha256=tag.plan_sha256)
    assert tag.created and json.loads(tag_path(path).read_text())["key"] == tag.key
    assert check(path, tag) == []
    assert list_engines(tmp_path / "engines") == [(path, tag)]


@pytest.mark.parametrize("changes, phrase", [
    ({"onnx_sha256": "b" * 64}, "built from another ONNX"),
    ({"target": dataclasses.replace(ORIN, tensorrt="8.6.2.3")}, "built with TensorRT 10.3.0, this machine has 8.6.2.3"),
    ({"target": dataclasses.replace(ORIN, compute_capability="7.2", gpu="Xavier")}, "this GPU is Xavier (7.2)"),
    ({"target": dataclasses.replace(ORIN, device_model="NVIDIA Jetson Orin NX")}, "this is 'NVIDIA Jetson Orin NX'"),
    ({"input_shapes": {"images": (1, 3, 640, 640)}}, "outside the engine's profile"),
])
def test_mismatches_say_why(tmp_path, changes, phrase):
    path = write_engine(tmp_path, make_tag(), b"plan")
    reasons = check(path, read_tag(path), **changes)
    assert len(reasons) == 1 and phrase in reasons[0], reasons


def test_a_dynamic_batch_profile_admits_the_range(tmp_path):
    tag = make_tag(profile=(ProfileShape("images", (1, 3, 416, 416), (4, 3, 416, 416), (4, 3, 416, 416)),))
    path = write_engine(tmp_path, tag, b"plan")
    assert check(path, read_tag(path), input_shapes={"images": (2, 3, 416, 416)}) == []
    assert check(path, read_tag(path), input_shapes={"images": (8, 3, 416, 416)})


def test_a_changed_plan_is_detected(tmp_path):
    path = write_engine(tmp_path, make_tag(), b"plan")
    path.write_bytes(b"plan, truncated or replaced")
    assert check(path, read_tag(path)) == ["the plan file was changed or truncated after it was built"]


def test_untagged_or_damaged_engines_are_not_listed(tmp_path):
    good = write_engine(tmp_path, make_tag(), b"plan")
    (tmp_path / "foreign.engine").write_bytes(b"someone else's plan")
    damaged = write_engine(tmp_path, make_tag(options=EngineOptions("int8")), b"plan")
    tag_path(damaged).write_text("{not json")
    assert [path for path, _ in list_engines(tmp_path)] == [good]
    with pytest.raises(BadInputError, match="no tag"):
        read_tag(tmp_path / "foreign.engine")
    with pytest.raises(BadInputError, match="unreadable engine tag"):
        read_tag(damaged)
    assert list_engines(tmp_path / "missing") == []


def test_an_unwritable_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "engines"
    blocker.write_text("a file where the engine folder should be")
    with pytest.raises(EdgeError, match="engines: cannot write the engine"):
        write_engine(blocker, make_tag(), b"plan")

"""Property-based fuzzing (Hypothesis) of what a user hands edge: ``bundle.json``, the daemon's YAML config and
command-line values. Whatever is generated, the command ends in exit 0, 2 or 3; a failure prints exactly one
``edge: error:`` line, never a traceback, and leaves no partial output; a success leaves complete outputs.

Each suite has a fixed budget (``max_examples``, derandomized: the same examples on every run, so CI is
reproducible) and all three together take well under a minute here. A hang would end the process with the
stacks of every thread (faulthandler), not stall CI.
"""

from __future__ import annotations

import contextlib
import copy
import faulthandler
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import demo
from edge.cli import main
from tests.helpers.runs import event_lines

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG_S = 120


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, yolox_bundle, assets):
    """A bundle folder whose bundle.json the examples rewrite, one image to replay, room for outputs."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(yolox_bundle.root, root / "bundle")
    (root / "images").mkdir()
    shutil.copy(assets / "images/fastestdet_people_indoor.jpg", root / "images/a.jpg")
    return root


def edge(*argv) -> tuple[int, str]:
    """``edge ARGV`` in this process: its exit code and stderr."""
    err = io.StringIO()
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as e:  # argparse
                code = e.code
    finally:
        faulthandler.cancel_dump_traceback_later()
    return code, err.getvalue()


def check_outcome(code: int, err: str, out: Path, codes: list[int]) -> None:
    codes.append(code)
    assert code in (0, 2, 3), (code, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if not line.startswith(("edge: warning:", "{"))]
    if code == 0:
        assert errors == [], err
        if (out / "summary.json").exists():  # a run: complete outputs
            summary = json.loads((out / "summary.json").read_text())
            assert summary["frames"] == len(event_lines(out))
    else:
        assert len(errors) == 1 and errors[0].startswith("edge: error: "), err
        assert not (out / "events.jsonl").exists() or json.loads((out / "summary.json").read_text())


def explored(codes: list[int]) -> None:
    """The examples ran some commands to the end and had others refused, or the property proved little."""
    assert 0 in codes and {2, 3} & set(codes), sorted(set(codes))


def fresh(root: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=root)) / "out"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def paths_of(doc, prefix=()):
    """Every path to a value in ``doc`` (dict keys and list indexes)."""
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield from paths_of(value, (*prefix, key))


@st.composite
def mutated(draw, doc):
    """``doc`` with one to three values replaced, keys removed or keys added."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths_of(doc))[1:]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        if not isinstance(doc, dict) or not doc:
            break
    return doc


def test_fuzzed_bundle_json_is_refused_in_one_line_or_runs(workspace):
    original = json.loads((workspace / "bundle" / "bundle.json").read_text())
    codes: list[int] = []

    @settings(FUZZ, max_examples=25)
    @given(mutated(original))
    def replay_with(doc):
        (workspace / "bundle" / "bundle.json").write_text(json.dumps(doc))
        out = fresh(workspace)
        code, err = edge("replay", workspace / "images", "--bundle", workspace / "bundle", "--out", out)
        check_outcome(code, err, out, codes)

    try:
        replay_with()
    finally:
        (workspace / "bundle" / "bundle.json").write_text(json.dumps(original))
    explored(codes)


SOURCE_KEYS = {"name": st.text(max_size=10), "width": st.integers(-5, 5000), "height": st.integers(-5, 5000),
               "fps": st.floats(), "fourcc": st.text(max_size=6), "timeout_s": st.floats(),
               "realtime": st.booleans(), "reconnect": st.just(False)}  # a reconnecting file loops for ever
TOP_KEYS = {
    "workers": st.integers(-2, 300), "threads": st.integers(-2, 300), "batch": st.integers(-2, 300),
    "backend": st.sampled_from(["auto", "onnxruntime", "tensorrt", "cuda", ""]),
    "decode": st.sampled_from(["thread", "process", "fork"]), "tracking": json_values, "video": st.booleans(),
    "save_masks": st.booleans(), "engine_build": st.booleans(), "device": st.text(max_size=10),
    "events": st.fixed_dictionaries({}, optional={"max_mb": st.floats() | st.none(), "backups": st.integers(-3, 2000)}),
    "http": st.fixed_dictionaries({}, optional={"port": st.integers(-10, 70000), "preview_fps": st.floats(),
                                                "host": st.sampled_from(["127.0.0.1", "localhost", "::1", "0.0.0.0"])}),
    "mqtt": st.fixed_dictionaries({"host": st.just("127.0.0.1")}, optional={
        "port": st.integers(-10, 70000), "qos": st.integers(-1, 4), "topic": st.text(max_size=12)}),
    "reconnect": st.fixed_dictionaries({}, optional={"first_s": st.floats(), "cap_s": st.floats()}),
    "fsp": json_values,
}


def some_of(draw, keys: dict) -> dict:
    """Up to two of ``keys``, each with a value its strategy draws (more would almost never be all valid)."""
    chosen = draw(st.lists(st.sampled_from(sorted(keys)), max_size=2, unique=True))
    return {key: draw(keys[key]) for key in chosen}


@st.composite
def configs(draw, images: str, bundle: str):
    """A YAML config: the required keys (sometimes broken), a few other keys with values of any kind."""
    url = draw(st.sampled_from([images, images, images + "/none", "missing.mp4"]))
    doc = {"sources": [{"url": url, **some_of(draw, SOURCE_KEYS)}],
           "bundles": [draw(st.sampled_from([bundle, bundle, bundle + "-none"]))], **some_of(draw, TOP_KEYS)}
    text = yaml.safe_dump(doc, allow_unicode=True)
    if draw(st.integers(0, 9)) == 0:  # text that is hardly YAML at all
        text = draw(st.text(max_size=40))
    return text


def test_fuzzed_yaml_configs_are_refused_in_one_line_or_run(workspace):
    codes: list[int] = []

    @settings(FUZZ, max_examples=25)
    @given(configs(str(workspace / "images"), str(workspace / "bundle")))
    def run_with(text):
        out = fresh(workspace)
        out.parent.joinpath("edge.yaml").write_text(text + f"\nout: {out}\n" if "sources" in text else text)
        code, err = edge("run", "--config", out.parent / "edge.yaml")
        check_outcome(code, err, out, codes)

    run_with()
    explored(codes)


words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8) | st.sampled_from(
    ["0", "1", "-1", "2", "nan", "inf", "1e309", "3x", "416x416", "0x0", "1,2", "1,2,3", "0,0,0", "255"])


def test_fuzzed_command_line_values_are_refused_in_one_line_or_run(workspace, assets):
    codes: list[int] = []

    @settings(FUZZ, max_examples=40)
    @given(st.sampled_from(["replay", "create"]),
           st.dictionaries(st.sampled_from(["--workers", "--threads", "--batch", "--backend", "--decode", "--mean",
                                            "--std", "--score", "--iou", "--input-size", "--pad-value"]),
                           words, max_size=3))
    def command_with(command, flags):
        out = fresh(workspace)
        given_flags = [f"{flag}={value}" for flag, value in flags.items()]
        if command == "replay":
            argv = ["replay", workspace / "images", "--bundle", workspace / "bundle", "--out", out, *given_flags]
        else:
            argv = ["bundle", "create", "--onnx", assets / demo.YOLOX, "--task", "detection", "--decoder", "yolox",
                    "--color", "bgr", "--out", out, *given_flags]
        code, err = edge(*argv)
        check_outcome(code, err, out, codes)
        if command == "create" and code != 0:
            assert not out.exists() and list(out.parent.iterdir()) == []  # no half-made bundle

    command_with()
    explored(codes)

"""One RunConfig for ``edge replay`` and ``edge run``: the two parsers offer the same run options, the YAML keys
are the same options, and both read and check them alike."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from edge.cli import build_parser, main
from edge.config import RUN_OPTIONS, DaemonConfig, RunConfig, flag_of, load_config, run_config, run_options
from edge.errors import UsageError
from streams.feed import DecodeMode


def subparser(name: str) -> argparse.ArgumentParser:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


def described(action: argparse.Action) -> tuple:
    """Everything that makes an option what it is, but the function object behind ``type``."""
    return (tuple(action.option_strings), action.dest, type(action).__name__, action.default, action.nargs,
            action.metavar, action.choices, action.required, action.help,
            None if action.type is None else action.type.__qualname__)


def run_actions(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    return {a.dest: described(a) for a in parser._actions if a.dest in RUN_OPTIONS}


def test_replay_and_run_offer_the_same_run_options():
    replay, run = run_actions(subparser("replay")), run_actions(subparser("run"))
    assert replay == run
    assert set(replay) == set(RUN_OPTIONS) == {f.name for f in dataclasses.fields(RunConfig)}
    # and nothing else on either side looks like a run option under another name
    others = {s for parser in (subparser("replay"), subparser("run")) for a in parser._actions
              if a.dest not in RUN_OPTIONS for s in a.option_strings}
    assert others == {"-h", "--help", "--debug", "--realtime", "--overwrite", "--config", "--source", "--http-port"}


def test_every_run_option_is_a_key_of_the_daemon_config():
    assert set(RUN_OPTIONS) <= {f.name for f in dataclasses.fields(DaemonConfig)}


def parse(command: str, *argv: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *(["clip.mp4"] if command == "replay" else []), *argv])


FLAGS = ["--bundle", "a", "--bundle", "b", "--out", "o", "--backend", "onnxruntime", "--no-engine-build",
         "--workers", "3", "--threads", "2", "--batch", "4", "--decode", "process", "--no-tracking", "--no-video",
         "--save-masks", "--score", "0.5", "--iou", "0.6", "--classes", "person, car", "--max-det", "10",
         "--thresholds", "a:score=0.7", "--thresholds", "a:classes=dog", "--thresholds", "b:max_det=3",
         "--interval", "a=3", "--interval", "b=2", "--motion", "--motion-area", "0.01", "--motion-crop",
         "--analytics", "zones.yaml"]
YAML = """\
sources: [{url: clip.mp4}]
bundles: [a, b]
out: o
backend: onnxruntime
engine_build: false
workers: 3
threads: 2
batch: 4
decode: process
tracking: false
video: false
save_masks: true
score: 0.5
iou: 0.6
classes: [person, car]
max_det: 10
thresholds: {a: {score: 0.7, classes: [dog]}, b: {max_det: 3}}
interval: {a: 3, b: 2}
motion: true
motion_area: 0.01
motion_crop: true
analytics: zones.yaml
"""


def test_flags_and_yaml_give_the_same_run_config(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(YAML)
    from_yaml = load_config(path)
    expected = {name: value for name, value in dataclasses.asdict(from_yaml).items() if name in RUN_OPTIONS}
    for command in ("replay", "run"):
        assert dataclasses.asdict(run_config(parse(command, *FLAGS))) == expected
    assert expected["decode"] is DecodeMode.PROCESS and expected["bundles"] == ["a", "b"]


def test_defaults_are_the_dataclass_defaults(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("sources: [{url: clip.mp4}]\nbundles: [a]\n")
    from_yaml = load_config(path)
    for command in ("replay", "run"):
        from_flags = run_config(parse(command, "--bundle", "a"))
        assert from_flags == RunConfig(bundles=["a"])
        assert all(getattr(from_yaml, name) == getattr(from_flags, name) for name in RUN_OPTIONS)
    assert from_yaml.tracking and from_yaml.video and from_yaml.engine_build and not from_yaml.save_masks


@pytest.mark.parametrize(("key", "value", "message"), [
    ("batch", "0", "must be at least 1, got 0"),
    ("workers", "0", "must be at least 1, got 0"),
    ("threads", "-2", "must be at least 1, got -2"),
    ("decode", "fibers", "'fibers' is not one of thread, process"),
    ("backend", "openvino", "'openvino' is not one of auto, onnxruntime, tensorrt"),
])
def test_yaml_and_flags_check_alike(tmp_path, capsys, key, value, message):
    path = tmp_path / "edge.yaml"
    path.write_text(f"sources: [{{url: clip.mp4}}]\nbundles: [a]\n{key}: {value}\n")
    with pytest.raises(UsageError, match=f"edge.yaml:3: {key}: {message}"):
        load_config(path)
    for command in ("replay", "run"):
        with pytest.raises(SystemExit) as exited:
            parse(command, "--bundle", "a", flag_of(key), value)
        assert exited.value.code == 2 and f"argument {flag_of(key)}: {message}" in capsys.readouterr().err


def test_flags_given_with_a_config_file_override_its_keys(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("sources: [{url: clip.mp4}]\nbundles: [a]\nvideo: true\nworkers: 2\n")
    args = parse("run", "--config", str(path), "--no-video")
    assert run_options(args) == {"video": False}  # flags not given stay out, so the file keeps its keys
    config = dataclasses.replace(load_config(path), **run_options(args))
    assert (config.video, config.workers) == (False, 2)


def test_the_flags_of_before_still_work():
    """``--no-video``, ``--no-engine-build`` and ``--save-masks`` are generated under their old names; replay's
    ``--track`` is argparse's unambiguous prefix of ``--tracking``."""
    for command in ("replay", "run"):
        config = run_config(parse(command, "--bundle", "a", "--no-video", "--no-engine-build", "--save-masks",
                                  "--track"))
        assert (config.video, config.engine_build, config.save_masks, config.tracking) == (False, False, True, True)


def test_a_run_without_bundles_is_a_usage_error(capsys):
    assert main(["replay", "clip.mp4"]) == 2
    assert capsys.readouterr().err.strip() == "edge: error: --bundle: give at least one bundle folder"
    assert main(["run", "--config", "edge.yaml", "--bundle", "b"]) == 2
    assert "not both" in capsys.readouterr().err

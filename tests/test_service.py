"""``edge service install``: the unit it writes is read back by systemd's own parser (``systemd-analyze verify``,
which also checks that ExecStart's program exists), its user by ``systemd-sysusers`` into a scratch root."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edge import service
from edge.cli import main

LIVE = "sources:\n  - url: rtsp://127.0.0.1:8554/door\n  - url: {video}\nbundles: [{bundle}]\n"
FILES = "sources:\n  - url: {video}\nbundles: [{bundle}]\nout: /var/lib/edge/out\n"


@pytest.fixture
def config(tmp_path, yolox_bundle, assets):
    def write(template: str, name: str = "edge.yaml") -> Path:
        path = tmp_path / name
        path.write_text(template.format(video=assets / "videos/bgslibrary_highway_traffic_320x240.avi",
                                        bundle=yolox_bundle.root))
        return path

    return write


def dry_run(config: Path, capsys, *options: str) -> str:
    assert main(["service", "install", "--config", str(config), "--dry-run", *options]) == 0
    return capsys.readouterr().out


def parse(unit: str) -> configparser.ConfigParser:
    """Sections and keys as systemd reads them (no interpolation: ``%`` is systemd's)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(unit)
    return parser


def verify(unit: str, folder: Path, name: str = "edge.service") -> None:
    """``systemd-analyze verify``: exit 0 and not a word on stderr (unknown keys are only warned about)."""
    path = folder / name
    path.write_text(unit)
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed: the unit is checked by its structure only (test_unit_structure)")


def test_unit_structure(config, capsys):
    unit = parse(dry_run(config(LIVE), capsys))
    assert unit.sections() == ["Unit", "Service", "Install"]
    run = unit["Service"]
    assert run["Type"] == "notify" and run["NotifyAccess"] == "main" and int(run["WatchdogSec"]) > 0
    assert run["Restart"] == "always"  # a live source: come back whatever ended the process
    assert run["ExecStart"] == f"{sys.executable} -m edge run --config {config(LIVE)}"
    assert run["User"] == "edge" and "video" in run["SupplementaryGroups"].split()
    assert run["StateDirectory"] == "edge" and run["WorkingDirectory"] == "/var/lib/edge"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@needs_systemd_analyze
def test_systemd_accepts_the_unit(config, capsys, tmp_path):
    verify(dry_run(config(LIVE), capsys), tmp_path)


def test_only_files_restart_on_failure_only(config, capsys):
    assert parse(dry_run(config(FILES), capsys))["Service"]["Restart"] == "on-failure"


@needs_systemd_analyze
def test_paths_with_spaces_and_percent_signs_survive_systemds_parser(tmp_path, config):
    """systemd checks that ExecStart's program exists: it does only if the quoting is read back as written."""
    odd = tmp_path / "my env 100%"
    odd.mkdir()
    python = odd / "python"
    python.symlink_to(sys.executable)
    unit = service.render(config(LIVE, "cam era.yaml"), python=str(python)).unit
    assert f'ExecStart="{python}" -m edge run --config "{tmp_path}/cam era.yaml"'.replace("%", "%%") in unit
    verify(unit, tmp_path)
    bad = unit.replace(f'"{str(python).replace("%", "%%")}"', str(python).replace("%", "%%"))
    with pytest.raises(AssertionError, match="not executable|No such file"):
        verify(bad, tmp_path, "bad.service")


def test_install_writes_the_unit_and_declares_its_user(config, tmp_path, capsys):
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers is not installed")
    root = tmp_path / "root"
    assert main(["service", "install", "--config", str(config(LIVE)), "--root", str(root), "--name", "door"]) == 0
    unit = parse((root / "etc/systemd/system/door.service").read_text())["Service"]
    assert unit["User"] == "edge" and unit["StateDirectory"] == "door"
    users = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    assert users["edge"][5] == "/var/lib/door" and users["edge"][6].endswith("nologin")
    groups = {fields[0]: fields[3].split(",")
              for fields in (line.split(":") for line in (root / "etc/group").read_text().splitlines())}
    assert "edge" in groups["video"]
    assert "systemctl --root" in capsys.readouterr().out


def test_bad_config_is_a_usage_error_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "edge.yaml"
    config.write_text("sources: []\nbundles: [x]\n")
    root = tmp_path / "root"
    assert main(["service", "install", "--config", str(config), "--root", str(root)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not root.exists()


@pytest.mark.parametrize("option", [["--name", "Edge Service"], ["--user", "root;rm"]])
def test_bad_names_are_usage_errors(config, capsys, option):
    assert main(["service", "install", "--config", str(config(LIVE)), "--dry-run", *option]) == 2
    assert option[1] in capsys.readouterr().err


def test_installing_on_the_running_system_needs_root(config, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["service", "install", "--config", str(config(LIVE))]) == 2
    assert "sudo" in capsys.readouterr().err


def test_relative_paths_are_warned_about(tmp_path, capsys, monkeypatch):
    """The service runs in its state folder, so ``bundles/yolox`` would be looked for there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edge.yaml").write_text("sources: [{url: clip.mp4}, {url: /dev/video0}]\nbundles: [bundles/yolox]\n"
                                        "analytics: zones.yaml\n")
    assert main(["service", "install", "--config", "edge.yaml", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "bundles/yolox: a relative path, which the service reads from /var/lib/edge" in captured.err
    assert "zones.yaml: a relative path" in captured.err
    assert "clip.mp4: a relative path" in captured.err and "/dev/video0: a relative" not in captured.err
    assert f"--config {tmp_path / 'edge.yaml'}\n" in captured.out  # the config itself is made absolute


def test_a_folder_closed_to_other_users_is_warned_about(config, capsys):
    """Ubuntu's home folders are 750: a venv or config there is out of the service user's reach."""
    with tempfile.TemporaryDirectory() as scratch:  # pytest's own tmp_path sits under a folder of mode 700
        os.chmod(scratch, 0o755)
        closed = Path(scratch) / "home"
        closed.mkdir(mode=0o750)
        moved = closed / "edge.yaml"
        config(LIVE).rename(moved)
        assert main(["service", "install", "--config", str(moved), "--dry-run"]) == 0
    assert f"user edge may not reach {moved}: {closed} is closed to other users" in capsys.readouterr().err

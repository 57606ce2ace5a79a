"""``edge doctor``'s platform facts: Jetson release parsing, L4T → JetPack, power mode, CUDA versions.

The sample strings are what the devices write (/etc/nv_tegra_release, ``nvpmodel -q``).
"""

from __future__ import annotations

import pytest

from edge import cuda_info, doctor, jetson

RELEASES = {
    "# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD: t186ref, EABI: aarch64, DATE: Wed Mar 15 07:54:12 UTC"
    " 2023\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n": "35.3.1",
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025":
        "36.4.3",
    "# R32 (release), REVISION: 7.1, GCID: 29689809, BOARD: t186ref, EABI: aarch64, DATE: Wed Feb  2 21:33:23 UTC 2022":
        "32.7.1",
}


@pytest.mark.parametrize("text, release", RELEASES.items())
def test_parses_l4t_release(text, release):
    assert jetson.parse_l4t_release(text) == release


def test_unparseable_release_is_none():
    assert jetson.parse_l4t_release("Ubuntu 22.04") is None


@pytest.mark.parametrize("l4t, jetpack", [("35.3.1", "5.1.1"), ("35.4.1", "5.1.2"), ("36.3.0", "6.0"),
                                          ("36.4.0", "6.1"), ("36.4.3", "6.2"), ("36.4.4", "6.2.1"),
                                          ("32.7.1", "4.6.1")])
def test_l4t_to_jetpack(l4t, jetpack):
    assert jetson.jetpack_for_l4t(l4t) == jetpack


def test_unlisted_releases_resolve_to_their_branch():
    assert jetson.jetpack_for_l4t("36.9.0") == "6.x (L4T 36.9.0 is not in edge's table)"
    assert jetson.jetpack_for_l4t("35.9.9").startswith("5.1.x")
    assert jetson.jetpack_for_l4t("99.0.0") == "unknown"


@pytest.mark.parametrize("text, mode", [
    ("NV Power Mode: MAXN\n0\n", "MAXN (mode 0)"),
    ("NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n2\n", "15W (mode 2)"),
    ("NV Power Mode: MODE_30W_ALL\n", "MODE_30W_ALL"),
    ("nothing useful", None),
])
def test_power_mode(text, mode):
    assert jetson.parse_power_mode(text) == mode


@pytest.mark.parametrize("encoded, text", [(11040, "11.4"), (12060, "12.6"), (13000, "13.0"), (12020, "12.2")])
def test_cuda_versions(encoded, text):
    assert cuda_info.format_version(encoded) == text


def test_cuda_probe_never_raises_and_explains():
    info = cuda_info.probe()
    assert info.gpus or info.problem
    line = cuda_info.describe(info)
    assert line.startswith("runtime ")
    assert all(g.compute_capability.count(".") == 1 for g in info.gpus)


def test_doctor_reports_every_component_even_when_a_check_breaks(monkeypatch):
    def broken():
        raise OSError("device tree unreadable")

    checks = tuple((name, broken if name == "Jetson" else check) for name, check in doctor.CHECKS)
    monkeypatch.setattr(doctor, "CHECKS", checks)
    lines = doctor.report().splitlines()
    names = [line.split("  ")[0].strip() for line in lines]
    assert names == [name for name, _ in checks] + ["memory", "disk", "cuDNN", "DLA", "hardware codecs", "cameras",
                                                    "verdict"]
    assert any(line.startswith("Jetson") and "unavailable (OSError: device tree unreadable)" in line for line in lines)
    assert any(line.startswith("CUDA") and "runtime" in line for line in lines)

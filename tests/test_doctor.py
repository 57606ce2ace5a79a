"""``edge doctor`` on a mixed JetPack/pip stack: where OpenCV comes from, and versions below edge's floors."""

from __future__ import annotations

import importlib.metadata
import re

import cv2
import pytest

from edge import doctor

# What importlib.metadata.requires("edge") gives for an install of edge (runtime, compile and test requirements).
REQUIRES = ['numpy<3,>=1.26', 'opencv-python-headless>=4.8.0.76', 'onnxruntime>=1.18.0', 'jsonschema>=4.17',
            'torch==2.14.1; extra == "compile"', 'onnx>=1.15; extra == "compile"', 'pytest>=8; extra == "test"']


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: REQUIRES if name == "edge" else None)


def test_floors_are_the_runtime_requirements_minimums(installed):
    assert doctor.floors() == {"numpy": "1.26", "opencv-python-headless": "4.8.0.76", "onnxruntime": "1.18.0",
                               "jsonschema": "4.17"}


@pytest.mark.parametrize("distribution, version, parts, flagged", [
    ("numpy", "1.21.5", 4, True),  # Ubuntu 22.04's python3-numpy, as on JetPack 6
    ("numpy", "1.26.4", 4, False),
    ("numpy", "2.2.6", 4, False),
    ("opencv-python-headless", "4.8.0", 3, False),  # JetPack 6's OpenCV: 4.8.0 meets the 4.8.0.76 wheel's floor
    ("opencv-python-headless", "4.5.4", 3, True),  # JetPack 5's
    ("onnxruntime", "1.16.3", 4, True),
    ("onnxruntime", "1.18.0", 4, False),
    ("scipy", "0.1", 4, False),  # no floor known: nothing to say
])
def test_versions_below_the_floor_are_flagged(installed, distribution, version, parts, flagged):
    note = doctor.below_floor(distribution, version, parts)
    assert bool(note) == flagged and (not flagged or "floor" in note)


def test_a_checkout_that_is_not_installed_has_no_floors(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", missing)
    assert doctor.floors() == {} and doctor.below_floor("numpy", "1.0") == ""


def test_opencv_origin_names_the_pip_wheel_or_the_folder_it_came_from():
    assert doctor._opencv_origin(cv2.__file__).startswith("pip's opencv")
    jetpack = "/usr/lib/python3.10/dist-packages/cv2/__init__.py"
    assert doctor._opencv_origin(jetpack) == "not from pip: /usr/lib/python3.10/dist-packages"


def test_the_report_says_where_opencv_comes_from_and_whether_systemd_runs():
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in doctor.report().splitlines())
    assert "(pip's opencv" in lines["OpenCV"]
    assert lines["systemd"].startswith(("running", "not running"))

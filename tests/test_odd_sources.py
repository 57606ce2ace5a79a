"""Sources a user may well give (issue 13, defects 11 and 13): a 1×1 image, a FIFO, a corrupt image or a
video among the images of a folder."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from edge.cli import main
from streams.base import CaptureSettings, SourceError
from streams.sources import open_source
from tests.helpers.runs import event_lines, start, video_frames
from tests.helpers.servers import free_port


def test_a_one_pixel_image_is_replayed_with_its_video(capsys, yolox_bundle, tmp_path):
    image = tmp_path / "dot.png"
    cv2.imwrite(str(image), np.full((1, 1, 3), 200, np.uint8))
    out = tmp_path / "out"
    assert main(["replay", str(image), "--bundle", str(yolox_bundle.root), "--out", str(out)]) == 0, \
        capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == len(event_lines(out)) == video_frames(out / "annotated.mp4") == 1


def test_a_fifo_is_refused_instead_of_hanging(yolox_bundle, tmp_path):
    fifo = tmp_path / "camera.mp4"
    os.mkfifo(fifo)
    process = start("replay", fifo, "--bundle", yolox_bundle.root, "--out", tmp_path / "out")
    try:
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 3
    assert err.strip().splitlines() == [f"edge: error: {fifo}: not a regular file (a FIFO, socket or device); give "
                                        f"a video file, an image, a folder or a glob, or a camera as /dev/videoN"]


def test_a_corrupt_image_in_a_folder_is_skipped_logged_and_counted(capsys, yolox_bundle, assets, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "c.jpg"):
        shutil.copy(assets / "images/fastestdet_people_indoor.jpg", folder / name)
    (folder / "b.jpg").write_bytes(os.urandom(2000))
    out = tmp_path / "out"
    assert main(["replay", str(folder), "--bundle", str(yolox_bundle.root), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edge: warning: image skipped: cannot read it (unsupported format or corrupt file) "
                   f"(path={folder / 'b.jpg'})"]
    assert [e["frame"] for e in event_lines(out)] == [0, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["dropped"] == 1 and summary["streams"]["images"]["dropped"] == 1


def test_a_video_among_the_images_of_a_folder_is_named(capsys, yolox_bundle, assets, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(assets / "images/fastestdet_people_indoor.jpg", folder / "a.jpg")
    shutil.copy(assets / "videos/asl_again_person_upper_body.mkv", folder / "clip.mkv")
    assert main(["replay", str(folder), "--bundle", str(yolox_bundle.root), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edge: warning: files that are not images ignored (folder={folder}, count=1, files=clip.mkv)"]


def test_a_network_camera_leaves_no_ffmpeg_options_behind_for_files(assets):
    """A network camera opens with ``nobuffer``/``low_delay`` (read by OpenCV from the environment): left set, a
    file opened later in the same process lost its delayed frames (2 of 2 frames of an odd-sized MP4 became 0,
    a GIF opened as no frame at all)."""
    gif = assets / "videos" / "face-demographics-walking.gif"
    before = sum(1 for _ in open_source(str(gif)))
    with pytest.raises(SourceError):  # nothing listens there: the open fails, after setting its options
        open_source(f"http://127.0.0.1:{free_port()}/stream.mjpg", settings=CaptureSettings(timeout_s=1.0))
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
    assert sum(1 for _ in open_source(str(gif))) == before > 0

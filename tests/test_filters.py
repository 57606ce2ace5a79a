"""Run-time thresholds and filters (``--score/--iou/--classes/--max-det``, ``thresholds`` per bundle) on real
frames: what they keep, and the one-line errors for names a run does not have."""

from __future__ import annotations

import json
import shutil

import pytest

from edge.bundle import load_bundle
from edge.cli import main
from edge.config import Filters, RunConfig, load_config
from edge.errors import BadInputError, UsageError
from edge.filters import apply_filters

IMAGES = ("intel_frame_classroom_people.png", "bgslibrary_frame_highway_traffic.png",
          "intel_frame_two_people_walking.png")


@pytest.fixture(scope="module")
def frames(assets, tmp_path_factory):
    """Three real pictures (people in a classroom, cars on a highway, two people walking), linked, not copied."""
    folder = tmp_path_factory.mktemp("mixed")
    for name in IMAGES:
        (folder / name).symlink_to(assets / "images" / name)
    return folder


def per_frame(yolox_bundle, frames, out, *flags):
    """Each picture's detections (in name order: highway, classroom, two people)."""
    assert main(["replay", str(frames), "--bundle", str(yolox_bundle.root), "--out", str(out), "--no-video",
                 *flags]) == 0
    return [json.loads(line)["results"]["yolox_nano"]["detections"]
            for line in (out / "events.jsonl").read_text().splitlines()]


def detections(yolox_bundle, frames, out, *flags):
    return [d for found in per_frame(yolox_bundle, frames, out, *flags) for d in found]


@pytest.fixture(scope="module")
def unfiltered_frames(yolox_bundle, frames, tmp_path_factory):
    return per_frame(yolox_bundle, frames, tmp_path_factory.mktemp("all"))


@pytest.fixture(scope="module")
def unfiltered(unfiltered_frames):
    found = [d for frame in unfiltered_frames for d in frame]
    labels = {d["label"] for d in found}
    assert {"person", "car"} <= labels, labels  # the pictures hold both, so the filters below can drop some
    assert any(d["score"] < 0.6 for d in found) and any(d["score"] >= 0.6 for d in found)
    return found


def test_classes_keep_only_those_labels(yolox_bundle, frames, unfiltered, tmp_path):
    persons = detections(yolox_bundle, frames, tmp_path, "--classes", "person")
    assert persons and {d["label"] for d in persons} == {"person"}
    assert len(persons) == sum(d["label"] == "person" for d in unfiltered)


def test_score_drops_lower_scores(yolox_bundle, frames, unfiltered, tmp_path):
    confident = detections(yolox_bundle, frames, tmp_path, "--score", "0.6")
    assert confident and min(d["score"] for d in confident) >= 0.6
    assert len(confident) == sum(d["score"] >= 0.6 for d in unfiltered)


def test_max_det_caps_after_the_class_filter(yolox_bundle, frames, unfiltered_frames, tmp_path):
    """The four best persons of each picture, also where a chair is among the four best detections; the
    bundle's own ``classes`` (``--thresholds``) win over the run's."""
    assert any(d["label"] != "person" for d in unfiltered_frames[1][:4])
    found = per_frame(yolox_bundle, frames, tmp_path, "--classes", "person,car", "--max-det", "4",
                      "--thresholds", "yolox_nano:classes=person")
    expected = [[d for d in frame if d["label"] == "person"][:4] for frame in unfiltered_frames]
    assert [[d["score"] for d in f] for f in found] == [[d["score"] for d in f] for f in expected]
    assert [len(f) for f in found] == [0, 4, 2]


def test_unknown_labels_and_bundles_are_usage_errors(yolox_bundle, frames, tmp_path, capsys):
    run = ["replay", str(frames), "--bundle", str(yolox_bundle.root), "--out", str(tmp_path / "out")]
    assert main([*run, "--classes", "pedestrian"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge: error: --classes: 'pedestrian' is not a label of bundle 'yolox_nano' (labels: "
                          "person, bicycle, car,") and "\n" not in err
    assert main([*run, "--thresholds", "yolo:score=0.5"]) == 2
    assert "--thresholds yolo: no bundle named 'yolo' in this run (bundles: yolox_nano)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_flags_check_their_values(capsys):
    for flags, message in ((["--score", "1.5"], "argument --score: must be at most 1, got 1.5"),
                           (["--thresholds", "a:conf=0.5"], "expected BUNDLE:KEY=VALUE with KEY one of score, iou"),
                           (["--thresholds", "a:iou=-1"], "argument --thresholds: a:iou: must be at least 0, got -1"),
                           (["--classes", ","], "argument --classes: give at least one")):
        with pytest.raises(SystemExit):
            main(["replay", "clip.mp4", "--bundle", "b", *flags])
        assert message in capsys.readouterr().err


def test_yaml_per_bundle_thresholds_over_the_run_options(yolox_bundle, espnet_bundle, tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(f"sources: [{{url: clip.mp4}}]\nbundles: [{yolox_bundle.root}, {espnet_bundle.root}]\n"
                    "score: 0.4\nclasses: [car]\nthresholds:\n  yolox_nano: {score: 0.5, classes: [person, dog]}\n"
                    "  espnetv2_voc: {iou: 0.6}\n")
    config = load_config(path)
    yolox, espnet = apply_filters([yolox_bundle, espnet_bundle], config)
    assert (yolox.thresholds.score, yolox.thresholds.classes, yolox.thresholds.iou) == (0.5, ("person", "dog"), 0.45)
    assert (espnet.thresholds.score, espnet.thresholds.iou, espnet.thresholds.classes) == (0.4, 0.6, None)
    path.write_text(path.read_text().replace("iou: 0.6", "iou: 1.6"))
    with pytest.raises(UsageError, match=r"edge.yaml:7: thresholds.espnetv2_voc.iou: must be at most 1, got 1.6"):
        load_config(path)
    with pytest.raises(UsageError, match=r"thresholds.espnetv2_voc.classes: 'espnetv2_voc' is a segmentation"):
        apply_filters([espnet_bundle], RunConfig(bundles=[], thresholds={"espnetv2_voc": Filters(classes=["car"])}))
    with pytest.raises(UsageError, match=r"--classes: no detection bundle in this run"):
        apply_filters([espnet_bundle], RunConfig(bundles=[], classes=["person"]))


def test_a_bundle_may_declare_its_classes(yolox_bundle, tmp_path):
    """``bundle.json`` ``thresholds.classes`` is the bundle's default filter; its names are checked at load."""
    folder = tmp_path / "people"
    shutil.copytree(yolox_bundle.root, folder)
    doc = json.loads((folder / "bundle.json").read_text())
    assert "classes" not in doc["thresholds"]  # written only when set
    doc["thresholds"]["classes"] = ["person"]
    (folder / "bundle.json").write_text(json.dumps(doc))
    assert load_bundle(folder).thresholds.classes == ("person",)
    doc["thresholds"]["classes"] = ["persons"]
    (folder / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match=r"field 'thresholds.classes': 'persons' is not one of the labels"):
        load_bundle(folder)

"""Zones and lines on synthetic tracks: the vectorised geometry against OpenCV's, each event when it must
happen and not otherwise, class fractions inside a zone, the analytics file's checks, and the stage's checks
against the run's streams, bundles and classes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.analytics.coverage import ZoneCoverage
from edge.analytics.lines import LineCounter
from edge.analytics.settings import AnalyticsSettings, Anchor, ClipSettings, LineSettings, ZoneSettings
from edge.analytics.shapes import Polygon, Segment, anchor_points, to_pixels
from edge.analytics.stage import AnalyticsStage, load_analytics
from edge.analytics.zones import ZoneCounter
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.config import load_config
from edge.errors import UsageError
from edge.results import Detections, Segmentation
from streams.base import Frame

LABELS = ["person", "car"]
SIZE = (200, 100)


def label(class_id: int) -> str:
    return LABELS[class_id]


def tracked(*items: tuple[int, int, tuple[float, float]]) -> Detections:
    """Detections of (track id, class id, (x, y) of the bottom centre) with 10 × 20 boxes."""
    if not items:
        return Detections.empty()
    boxes = np.array([[x - 5, y - 20, x + 5, y] for _, _, (x, y) in items], np.float32)
    return Detections(boxes, np.full(len(items), 0.9, np.float32), np.array([c for _, c, _ in items], np.int64),
                      track_ids=np.array([t for t, _, _ in items], np.int64))


def test_points_in_polygon_match_opencv_on_a_concave_polygon():
    polygon = np.array([[10, 10], [190, 10], [190, 90], [100, 40], [10, 90]], np.float64)
    points = np.random.default_rng(0).uniform(0, [200, 100], (2000, 2))
    expected = [cv2.pointPolygonTest(polygon.astype(np.float32), (float(x), float(y)), False) > 0 for x, y in points]
    assert Polygon(polygon).contains(points).tolist() == expected


def test_normalised_points_scale_with_the_frame_and_pixels_do_not():
    zone = ZoneSettings(name="z", points=[[0.5, 0.5], [1, 0.5], [1, 1]])
    assert to_pixels(zone, SIZE).tolist() == [[100, 50], [200, 50], [200, 100]]
    pixels = ZoneSettings(name="z", points=[[5, 5], [10, 5], [10, 10]])
    assert to_pixels(pixels, SIZE).tolist() == [[5, 5], [10, 5], [10, 10]]


def test_anchors_are_bottom_centres_or_centres():
    boxes = np.array([[0, 0, 10, 20]], np.float32)
    assert anchor_points(boxes, Anchor.BOTTOM).tolist() == [[5, 20]]
    assert anchor_points(boxes, Anchor.CENTER).tolist() == [[5, 10]]


def test_a_line_has_its_right_below_when_drawn_left_to_right():
    segment = Segment(np.array([[0.0, 50.0], [200.0, 50.0]]))
    assert np.sign(segment.side(np.array([[10.0, 80.0], [10.0, 20.0]]))).tolist() == [1, -1]
    starts, ends = np.array([[100.0, 20.0], [250.0, 20.0]]), np.array([[100.0, 80.0], [250.0, 80.0]])
    assert segment.crossed_by(starts, ends).tolist() == [True, False]  # the second passes beyond B


def zone_counter(debounce=2, forget_s=1.0, **settings) -> ZoneCounter:
    zone = ZoneSettings(name="door", points=[[50, 20], [150, 20], [150, 80], [50, 80]], **settings)
    return ZoneCounter(zone, "det", label, None if zone.classes is None else np.array([0]), debounce, forget_s)


def run(counter, frames, start: float = 0.0, step: float = 0.1) -> list[tuple[int, dict]]:
    events = []
    for i, detections in enumerate(frames):
        events += [(i, e) for e in counter.update(detections, start + i * step, SIZE)]
    return events


def test_enter_and_exit_hold_for_the_debounce_frames_and_count_the_stay():
    path = [(10, 50)] * 2 + [(100, 50)] * 10 + [(100, 95)] * 3
    events = run(zone_counter(), [tracked((7, 0, p)) for p in path])
    assert [(i, e["type"], e["track_id"]) for i, e in events] == [(3, "enter", 7), (13, "exit", 7)]
    assert events[1][1]["dwell_s"] == pytest.approx(1.0)


def test_a_box_flickering_on_the_border_makes_no_events():
    path = [(100, 50), (100, 95)] * 10
    assert run(zone_counter(debounce=2), [tracked((1, 0, p)) for p in path]) == []
    assert run(zone_counter(debounce=1), [tracked((1, 0, p)) for p in path])  # without the debounce: a stream


def test_dwell_once_per_stay_and_a_lost_track_exits():
    counter = zone_counter(debounce=1, forget_s=0.45, dwell_s=0.5)
    frames = [tracked((1, 0, (100, 50)))] * 10 + [tracked()] * 8
    events = run(counter, frames)
    assert [(i, e["type"]) for i, e in events] == [(0, "enter"), (5, "dwell"), (14, "exit")]
    assert events[2][1]["lost"] is True and not counter.occupancy()


def test_count_when_the_zone_holds_max_count_and_again_only_after_it_emptied():
    counter = zone_counter(debounce=1, max_count=2)
    two, one = tracked((1, 0, (100, 50)), (2, 0, (120, 50))), tracked((1, 0, (100, 50)), (2, 0, (120, 95)))
    events = run(counter, [two, two, one, two])
    assert [(i, e["type"], e.get("count")) for i, e in events if e["type"] == "count"] == [(0, "count", 2),
                                                                                          (3, "count", 2)]
    assert counter.count_events == 2 and counter.occupancy() == {"person": 2}


def test_zones_count_only_their_classes_and_tracked_detections():
    counter = zone_counter(debounce=1, classes=["person"])
    untracked = tracked((1, 0, (100, 50)))
    untracked.track_ids[:] = -1
    assert run(counter, [tracked((3, 1, (100, 50))), untracked]) == []


def line_counter() -> LineCounter:
    line = LineSettings(name="road", points=[[0, 50], [200, 50]], directions=["south", "north"],
                        anchor=Anchor.BOTTOM)
    return LineCounter(line, "det", label, None, forget_s=1.0)


def test_crossings_by_direction_once_however_the_box_jitters_on_the_line():
    counter = line_counter()
    south = [(100, 30), (100, 49), (100, 51), (100, 49.5), (100, 51), (100, 70)]  # the jitter is within MARGIN
    north = [(50, 90), (50, 60), (50, 40)]
    events = run(counter, [tracked((1, 0, a), (2, 1, b)) for a, b in zip(south, north + [(50, 30)] * 3)])
    assert [(i, e["track_id"], e["direction"], e["label"]) for i, e in events] == [(2, 2, "north", "car"),
                                                                                  (5, 1, "south", "person")]
    assert counter.totals == {"south": {"person": 1}, "north": {"car": 1}}


def test_going_round_the_end_of_a_line_is_not_a_crossing():
    counter = LineCounter(LineSettings(name="gate", points=[[0, 50], [100, 50]]), "det", label, None, 1.0)
    assert run(counter, [tracked((1, 0, p)) for p in [(150, 20), (150, 80)]]) == []


def test_class_fractions_inside_a_zone_and_coverage_events():
    zone = ZoneSettings(name="left", points=[[0, 0], [0.5, 0], [0.5, 1], [0, 1]], max_fraction=0.5)
    coverage = ZoneCoverage(zone, "seg", label, None)
    class_map = np.zeros((100, 200), np.uint8)
    class_map[:, 60:] = 1
    fractions, events = coverage.update(Segmentation(class_map, 2))
    inside = cv2.fillPoly(np.zeros((100, 200), np.uint8), [np.array([[0, 0], [100, 0], [100, 100], [0, 100]])], 1)
    expected_car = np.count_nonzero(inside[:, 60:]) / np.count_nonzero(inside)
    assert fractions == pytest.approx({"person": 1 - expected_car, "car": expected_car}, abs=1e-6)
    assert [(e["type"], e["label"]) for e in events] == [("coverage", "person")]
    assert coverage.update(Segmentation(class_map, 2))[1] == []  # still covered: no new event
    bits = np.zeros((100, 200), np.uint8)
    bits[:50, :] = 0b11
    fractions, _ = ZoneCoverage(zone, "parts", label, None).update(Segmentation(bits, 2, multi_label=True))
    assert fractions == pytest.approx({"person": 0.5, "car": 0.5}, abs=0.02)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("zones: [{name: a, points: [[0, 0], [1, 1]]}]", "zones.yaml:1: zones[0]: points: at least 3 [x, y] points"),
    ("lines:\n  - {name: a, points: [[0, 0], [1, 1]], directions: [in, in]}", "zones.yaml:2: lines[0]: directions"),
    ("zones:\n  - {name: a, points: [[0, 0], [1, 0], [1, 1]], dwel_s: 3}", "dwel_s: unknown key; did you mean "
                                                                           "'dwell_s'?"),
    ("lines:\n  - {name: a, points: [[0, 0], [1, 1]]}\n  - {name: a, points: [[0, 1], [1, 1]]}",
     "two zones or lines are named 'a'"),
    ("snapshots: true", "no zones and no lines"),
])
def test_the_analytics_file_is_checked_line_by_line(tmp_path, text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        load_analytics(write(tmp_path / "zones.yaml", text))


def bundle(name: str, task: str, labels: list[str]) -> Bundle:
    return Bundle(Path(name), name, task, "yolox", InputSpec("x", (1, 3, 8, 8)), labels, Thresholds(), {}, {})


def test_the_stage_checks_streams_bundles_and_classes():
    detector, segmenter = bundle("det", "detection", LABELS), bundle("seg", "segmentation", ["sky", "road"])
    line = LineSettings(name="l", points=[[0, 0], [1, 1]])
    for settings, message in [
        (AnalyticsSettings(lines=[LineSettings(name="l", points=[[0, 0], [1, 1]], stream="cam9")]), "stream 'cam9'"),
        (AnalyticsSettings(lines=[LineSettings(name="l", points=[[0, 0], [1, 1]], bundle="seg")]), "bundle 'seg'"),
        (AnalyticsSettings(lines=[LineSettings(name="l", points=[[0, 0], [1, 1]], classes=["sky"])]),
         "classes: 'sky' is not a label of any detection bundle"),
    ]:
        with pytest.raises(UsageError, match=message):
            AnalyticsStage(settings, ["cam1"], [detector, segmenter], "zones.yaml")
    zone = ZoneSettings(name="z", points=[[0, 0], [1, 0], [1, 1]], classes=["road"])
    stage = AnalyticsStage(AnalyticsSettings(zones=[zone], lines=[line]), ["cam1"], [detector, segmenter])
    image = np.zeros((100, 200, 3), np.uint8)
    road = Segmentation(np.ones((100, 200), np.uint8), 2)
    found = stage.apply(Frame(image, 0, 0.0, "cam1", 0.0, 0.0), {"det": tracked(), "seg": road})
    assert found.fractions == {"seg": {"z": {"road": pytest.approx(1.0)}}}  # the zone holds only 'road' of 'seg'
    assert [(v.name, v.closed) for v in found.shapes] == [("z", True), ("l", False)]  # drawn, both
    status = stage.status()["cam1"]
    assert status["lines"]["l"]["points"] == [[0, 0], [1, 1]] and status["zones"]["z"]["points"][1] == [1, 0]


def test_the_daemon_config_takes_the_analytics_inline_or_as_a_file(tmp_path):
    head = "sources: [{url: clip.mp4}]\nbundles: [a]\n"
    inline = load_config(write(tmp_path / "edge.yaml", head + "analytics:\n  lines:\n    - {name: l, points: "
                                                               "[[0, 0], [1, 1]]}\n  clips: {post_s: 4}\n"))
    assert isinstance(inline.analytics, AnalyticsSettings) and inline.analytics.lines[0].name == "l"
    assert inline.analytics.clips == ClipSettings(pre_s=2.0, post_s=4.0)
    assert load_config(write(tmp_path / "edge.yaml", head + "analytics: zones.yaml\n")).analytics == "zones.yaml"
    with pytest.raises(UsageError, match=r"edge.yaml:5: analytics.lines\[0\]: points: 2 \[x, y\] points, got 1"):
        load_config(write(tmp_path / "edge.yaml", head + "analytics:\n  lines:\n    - {name: l, points: [[0, 0]]}\n"))

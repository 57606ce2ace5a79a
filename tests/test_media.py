"""Snapshots and clips of analytics events: named in the events, written as JPEG and MP4 (the clip starts from
the frames before the event), extended by events that come while one is open, and kept within the disk
budget, oldest first."""

from __future__ import annotations

import cv2
import numpy as np

from edge.analytics.media import ClipCue, MediaPlan
from edge.analytics.recorder import MediaSink, MediaStore
from edge.analytics.settings import AnalyticsSettings, ClipSettings
from edge.analytics.stage import FrameAnalytics
from edge.pipeline.messages import FrameResult
from streams.base import Frame

FPS = 10.0


def frame(index: int) -> Frame:
    image = np.full((48, 64, 3), (index * 7) % 256, np.uint8)
    return Frame(image, index, index / FPS, "door cam", 0.0, 0.0)


def enter(track: int = 1) -> dict:
    return {"type": "enter", "zone": "hall", "track_id": track}


def test_events_name_their_snapshot_and_the_clip_they_open_or_extend():
    plan = MediaPlan(AnalyticsSettings(clips=ClipSettings(pre_s=1, post_s=2)))
    first, second = [enter(3)], [enter(4)]
    cues = [plan.name(frame(i), first if i == 10 else second if i == 25 else []) for i in range(60)]
    assert first[0]["snapshot"] == "snapshots/door_cam_0000001.000_000010_enter_hall_3.jpg"
    assert first[0]["clip"] == second[0]["clip"] == "clips/door_cam_0000001.000_000010_enter_hall_3.mp4"
    assert cues[9] is None and cues[10] == ClipCue(first[0]["clip"], 3.0)
    assert cues[25].until == 4.5 and cues[45] is not None and cues[46] is None  # extended to 2 s after the second
    quiet = MediaPlan(AnalyticsSettings(snapshots=False))
    event = enter()
    assert quiet.name(frame(0), [event]) is None and event == enter()


def item(index: int, events: list[dict], cue: ClipCue | None) -> FrameResult:
    return FrameResult(frame(index), {}, {}, FPS, analytics=FrameAnalytics(events, clip=cue))


def test_the_sink_writes_a_snapshot_per_event_and_a_clip_from_before_it(tmp_path):
    settings = AnalyticsSettings(clips=ClipSettings(pre_s=1, post_s=2))
    plan, sink = MediaPlan(settings), MediaSink(tmp_path, settings)
    named = []
    for i in range(60):
        events = [enter(1), enter(2)] if i == 20 else []
        sink.write(item(i, events, plan.name(frame(i), events)))
        named += events
    sink.close()
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == sorted(
        e["snapshot"].split("/")[1] for e in named)
    snapshot = cv2.imread(str(tmp_path / named[0]["snapshot"]))
    assert snapshot.shape == (48, 64, 3) and abs(int(snapshot.mean()) - 140) <= 2  # frame 20's grey
    clip = cv2.VideoCapture(str(tmp_path / named[0]["clip"]))
    assert int(clip.get(cv2.CAP_PROP_FRAME_COUNT)) == 10 + 1 + 20  # 1 s before, the event, 2 s after
    ok, first = clip.read()
    assert ok and abs(int(first.mean()) - (10 * 7)) <= 3  # starts at frame 10


def test_the_store_deletes_the_oldest_files_past_its_budget(tmp_path):
    (tmp_path / "snapshots").mkdir()
    earlier = tmp_path / "snapshots" / "earlier.jpg"
    earlier.write_bytes(b"x" * 400)  # from a run before: counted
    store = MediaStore(tmp_path, max_bytes=1000)
    paths = []
    for i in range(4):
        paths.append(tmp_path / "snapshots" / f"{i}.jpg")
        paths[-1].write_bytes(b"x" * 300)
        store.add(paths[-1])
    assert [p.exists() for p in [earlier, *paths]] == [False, False, True, True, True]
    assert store.total == 900 and store.deleted == 2

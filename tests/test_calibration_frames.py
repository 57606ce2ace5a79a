"""Frame sampling for calibration and distillation: spread over time, near-duplicates dropped, held-out disjoint."""

from __future__ import annotations

import re

import numpy as np
import pytest

from calibration.frames import choose_frames, sample_frames, split_holdout, spread_order, thumbnail


def test_spread_order_is_a_permutation_whose_prefixes_cover_the_range():
    order = spread_order(100)
    assert sorted(order.tolist()) == list(range(100))
    assert order[:4].tolist() == [0, 64, 32, 96]


def test_a_static_scene_counts_once():
    rng = np.random.default_rng(0)
    static = np.full((500, 32, 32), 100, np.float32) + rng.normal(0, 0.5, (500, 32, 32))  # sensor noise
    events = rng.uniform(0, 255, (5, 32, 32)).astype(np.float32)
    thumbnails = np.concatenate([static[:250], events, static[250:]])
    chosen = choose_frames(thumbnails, 50)
    assert len(chosen) == 6  # one frame of the empty scene + the five that differ
    assert set(range(250, 255)) <= set(chosen.tolist())


def test_sampled_video_frames_are_distinct_and_spread(assets):
    video = str(assets / "videos/one-by-one-person-detection.mp4")
    frames = sample_frames([video], 40)
    indices = [f.index for f in frames]
    assert len(frames) == 40 and indices == sorted(set(indices))
    assert indices[0] < 1394 * 0.1 and indices[-1] > 1394 * 0.9
    thumbs = np.stack([thumbnail(f.image) for f in frames]).reshape(40, -1)
    gaps = np.abs(thumbs[:, None] - thumbs[None]).mean(-1) + np.eye(40) * 1e9
    assert gaps.min() >= 3.0
    assert all(f.image.shape == (432, 768, 3) and f.source == video for f in frames)


def test_a_source_short_of_distinct_frames_says_why(assets, capsys):
    video = str(assets / "videos/bgslibrary_highway_traffic_320x240.avi")  # small cars barely move its thumbnails
    frames = sample_frames([video], 600)
    found = re.fullmatch(rf"{re.escape(video)}: {len(frames)} of the 600 frames asked: the other (\d+) of its (\d+) "
                         r"look like kept ones \(mean difference under 3 grey levels on a 32x32 thumbnail\)",
                         capsys.readouterr().err.strip())
    assert found and int(found[1]) + len(frames) == int(found[2]) > 700  # every decoded frame accounted for
    assert 100 < len(frames) < 600


def test_several_sources_share_the_count_and_a_short_one_says_so(assets, capsys):
    image = str(assets / "images/fastestdet_people_indoor.jpg")
    frames = sample_frames([str(assets / "videos/face-demographics-walking.gif"), image], 7)
    assert [f.source.rsplit("/", 1)[-1] for f in frames].count("fastestdet_people_indoor.jpg") == 1
    assert len(frames) == 5  # 4 from the GIF (its share), 1 from the single image (all it has)
    said = capsys.readouterr().err.splitlines()
    assert f"{image}: 1 of the 3 frames asked: it has only 1" in said
    assert not [line for line in said if "face-demographics-walking.gif:" in line]  # it gave its whole share


def test_holdout_is_disjoint_and_spans_the_footage():
    frames = list(range(100))
    used, held = split_holdout(frames, 0.25)
    assert len(held) == 25 and not set(used) & set(held) and len(used) + len(held) == 100
    assert held[0] < 10 and held[-1] > 90
    with pytest.raises(ValueError):
        split_holdout(frames, 1.5)

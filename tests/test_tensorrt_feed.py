"""The frames TensorRT's INT8 calibrator reads (calibration/tensorrt_feed.py), tested for real on frames of the
sample video preprocessed by the YOLOX-nano bundle's own spec. The calibrator that reads them is
tests/test_tensorrt_calibrator.py's."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.tensorrt_feed import CalibrationFeed, calibration_batches, calibration_feed
from edge.errors import BadInputError

VIDEO = "videos/bgslibrary_highway_traffic_320x240.avi"
FRAMES = 10


@pytest.fixture(scope="module")
def tensors(yolox_bundle, assets):
    """FRAMES input tensors of the highway video, preprocessed as at run time (1 × 3 × 416 × 416)."""
    return list(calibration_batches(yolox_bundle, [str(assets / VIDEO)], FRAMES))


def test_feed_hands_out_the_preprocessed_frames_as_batches(tensors):
    feed = CalibrationFeed(iter(tensors))
    batches = list(feed)
    assert len(batches) == FRAMES and feed.batches == FRAMES and feed.frames == FRAMES and feed.dropped == 0
    for batch, tensor in zip(batches, tensors):
        assert batch.shape == (1, 3, 416, 416) and batch.dtype == np.float32 and batch.flags.c_contiguous
        np.testing.assert_array_equal(batch, tensor)
    assert not np.array_equal(batches[0], batches[-1])  # real, moving footage
    assert feed.next_batch() is None and feed.next_batch() is None and feed.batches == FRAMES


def test_feed_regroups_frames_and_drops_the_last_partial_batch(tensors):
    feed = CalibrationFeed(tensors, shape=(4, 3, 416, 416))
    batches = list(feed)
    assert [b.shape for b in batches] == [(4, 3, 416, 416)] * 2
    assert feed.frames == 8 and feed.dropped == 2 and all(b.flags.c_contiguous for b in batches)
    np.testing.assert_array_equal(batches[1], np.concatenate(tensors[4:8]))
    two_at_a_time = [np.concatenate(tensors[i:i + 2]) for i in range(0, FRAMES, 2)]  # tensors of N = 2
    assert len(list(CalibrationFeed(two_at_a_time, shape=(3, 3, 416, 416)))) == 3


def test_feed_refuses_a_tensor_of_another_shape(tensors):
    feed = CalibrationFeed([tensors[0], tensors[1][:, :, :320]])
    assert feed.next_batch() is not None
    with pytest.raises(BadInputError, match=r"\[1, 3, 320, 416\] does not fit the engine input's \[1, 3, 416, 416\]"):
        feed.next_batch()


def test_calibration_feed_batches_at_the_bundle_shape(yolox_bundle, assets, tensors):
    feed = calibration_feed(yolox_bundle, [str(assets / VIDEO)], FRAMES)
    assert feed.shape == yolox_bundle.input.shape
    batches = list(feed)
    assert len(batches) == FRAMES
    for batch, tensor in zip(batches, tensors):  # the same frames as the sampler's, in the same order
        np.testing.assert_array_equal(batch, tensor)

"""YOLOX-nano's raw outputs ``[B, N, 85]`` compared between a student and its teacher, for compile's tests."""

from __future__ import annotations


def found_again(student, teacher, batch) -> float:
    """Share of the teacher's confident points (objectness × best class > 0.5) the student still scores > 0.25."""
    import torch

    with torch.no_grad():
        ours, theirs = student(batch), teacher(batch)
    score = [out[..., 4] * out[..., 5:].amax(-1) for out in (ours, theirs)]
    confident = score[1] > 0.5
    assert confident.sum() >= 10, "the frames should hold objects the teacher is sure of"
    return float((score[0][confident] > 0.25).float().mean())

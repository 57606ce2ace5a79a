"""Reconstruction after pruning: the kept-channel map names the teacher's channels the student kept (pruning
equals silencing the others), and re-solving the convolutions brings the pruned student's outputs back toward
the teacher's — exactly for a layer whose inputs pruning left alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from torch import nn  # noqa: E402

from compile.prune import PruneConfig, prune  # noqa: E402
from compile.reconstruct import kept_channels, reconstruct  # noqa: E402


class FusedNet(nn.Module):
    """A BatchNorm-folded network of YOLOX's kinds of layers: conv + bias + SiLU, depthwise, a residual add,
    a concatenation and a kept-width head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.branch = nn.Conv2d(16, 24, 3, padding=1)
        self.mix = nn.Conv2d(40, 32, 1)
        self.head = nn.Conv2d(32, 6, 1)

    def forward(self, x):
        act = nn.functional.silu
        x = act(self.stem(x))
        x = x + act(self.pointwise(act(self.depthwise(x))))
        x = act(self.mix(torch.cat([x, act(self.branch(x))], dim=1)))
        return self.head(x)


def fused_net() -> FusedNet:
    torch.manual_seed(0)
    return FusedNet().eval()


@pytest.fixture(scope="module")
def pruned():
    teacher, student, example = fused_net(), fused_net(), torch.zeros(1, 3, 32, 32)
    result = prune(student, example, PruneConfig(0.5))
    return teacher, student, kept_channels(fused_net(), example, result.history)


def test_pruning_equals_silencing_the_channels_the_map_says_were_dropped(pruned):
    teacher, student, kept = pruned
    silenced = fused_net()
    with torch.no_grad():
        for name, conv in silenced.named_modules():
            if isinstance(conv, nn.Conv2d):
                dropped = torch.ones(conv.out_channels, dtype=torch.bool)
                dropped[kept[name]] = False
                conv.weight[dropped] = 0  # SiLU(0) = 0: the channel contributes nothing downstream
                conv.bias[dropped] = 0
        images = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(student(images), silenced(images), atol=1e-5, rtol=1e-5)
    assert len(kept["head"]) == 6 and len(kept["stem"]) == 8


def test_reconstruction_brings_the_outputs_back_and_is_exact_where_inputs_are_unchanged(pruned):
    teacher, student, kept = pruned
    images, held = torch.randn(8, 3, 32, 32), torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = (student(held) - teacher(held)).pow(2).mean()
        solved = reconstruct(teacher, student, kept, images, ridge=1e-9)
        after = (student(held) - teacher(held)).pow(2).mean()
        stem = student.stem(held)
    assert set(solved) == set(kept)
    assert after < 0.5 * before, (float(before), float(after))
    # The stem reads the unpruned input: least squares finds the teacher's own kept filters again.
    torch.testing.assert_close(stem, teacher.stem(held)[:, kept["stem"]], atol=1e-4, rtol=1e-4)


def test_a_channel_map_that_disagrees_with_the_pruned_model_is_refused(pruned):
    teacher, student, kept = pruned
    wrong = {**kept, "stem": kept["stem"][:-1]}
    with pytest.raises(ValueError, match="stem: the replayed pruning history keeps 7 channels, the pruned model 8"):
        reconstruct(teacher, student, wrong, torch.randn(2, 3, 32, 32))

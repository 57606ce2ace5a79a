"""--prune-macs: each channel group of the uniform plan is costed by silencing it alone, which equals pruning
it; the costliest groups per MAC saved are spared and the pruned model stays within the budget."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from compile.prune import PruneConfig, cost, prune, replay  # noqa: E402
from compile.sensitivity import group_costs, spared_groups  # noqa: E402

EXAMPLE = torch.zeros(1, 3, 24, 24)


class TwoPaths(nn.Module):
    """A stem feeding a path the output relies on and one it barely reads (scaled by 1e-3)."""

    def __init__(self):
        super().__init__()
        self.stem, self.strong, self.weak = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1), \
            nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.silu(self.stem(x))
        return self.head(torch.cat([F.silu(self.strong(x)), 1e-3 * F.silu(self.weak(x))], dim=1))


def two_paths() -> TwoPaths:
    torch.manual_seed(0)
    return TwoPaths().eval()


def mse(ours, theirs):
    return (ours - theirs).pow(2).mean()


@pytest.fixture(scope="module")
def planned():
    model, images = two_paths(), torch.randn(4, 3, 24, 24)
    history = prune(two_paths(), EXAMPLE, PruneConfig(0.5)).history
    return model, images, history, group_costs(model, EXAMPLE, history, images, mse)


def test_silencing_a_group_costs_what_pruning_it_does_and_leaves_the_model_as_it_was(planned):
    model, images, history, costs = planned
    torch.testing.assert_close(model.state_dict(), two_paths().state_dict(), atol=0, rtol=0)
    _, macs = cost(model, EXAMPLE)
    for step, found in zip(history, costs):
        alone = replay(two_paths(), EXAMPLE, [step])
        with torch.no_grad():
            assert found.loss == pytest.approx(float(mse(alone(images), model(images))), rel=1e-4, abs=1e-9)
        assert found.macs_saved == pytest.approx(1 - cost(alone, EXAMPLE)[1] / macs, rel=0.05)
    by_root = {c.root: c for c in costs}
    assert by_root["weak"].loss < 1e-3 * by_root["strong"].loss


def test_the_costliest_groups_per_mac_are_spared_within_the_budget(planned):
    model, images, history, costs = planned
    uniform = prune(two_paths(), EXAMPLE, PruneConfig(0.5))
    share = uniform.macs_after / uniform.macs_before
    strong = next(c for c in costs if c.root == "strong")
    budget = share + strong.macs_saved + 0.01
    spared, _ = spared_groups(model, EXAMPLE, PruneConfig(0.5), budget, images, mse)
    ranked = sorted(costs, key=lambda c: c.loss / c.macs_saved, reverse=True)
    assert spared and spared[0] == ranked[0].root and "weak" not in spared
    pruned = prune(two_paths(), EXAMPLE, PruneConfig(0.5), keep=tuple(spared))
    assert pruned.macs_after / pruned.macs_before <= budget
    assert not spared_groups(model, EXAMPLE, PruneConfig(0.5), share, images, mse)[0]


def test_a_group_the_plan_leaves_whole_costs_nothing(planned):
    """Global pruning (``--prune-global``) can leave a layer whole: its history step names no channels."""
    model, images, _, _ = planned
    (found,) = group_costs(model, EXAMPLE, [("strong", True, [])], images, mse)
    assert found.loss == 0 and found.macs_saved == 0

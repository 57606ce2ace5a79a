"""Which pruning groups to spare when the MAC budget allows: those that cost the most per MAC they save.

Uniform pruning takes the same share of every group, but groups differ by orders of magnitude in what they
hold: on YOLOX-nano, thinning one CSP block's convolution by 30 % alone takes the teacher's confident
detections from 100 % to 0 %, while thinning a head convolution the same way changes nothing. Given a
budget (``--prune-macs 0.6``: at most 0.6 of the original MACs), the uniform pruning is planned first; each
of its groups is then tried alone on the unpruned model, by *silencing* the channels it would remove
(weights and biases zeroed: exactly what removing them does where the activation maps 0 to 0, as the tests
show for YOLOX), and scored by the distillation loss against the unsilenced model on the training frames.
The groups with the largest loss per MAC saved are spared (left whole) while the plan stays within the
budget, as Distiller's and NNI's sensitivity analyses pick per-layer ratios, in one pass.

A group's MAC saving is estimated from each layer's MACs and the share of its input or output channels the
group removes; the pruned model's real MACs are measured afterwards (:func:`compile.prune.cost`).
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from compile.prune import PruneConfig, PruningHistory, Trace, dependency_graph, prune

PRUNING = tp.pruner.function
# Where zeroing weight and bias rows removes the channel's output.
SILENCED = (PRUNING.prune_conv_out_channels, PRUNING.prune_depthwise_conv_out_channels,
            PRUNING.prune_linear_out_channels, PRUNING.prune_batchnorm_out_channels)
# Layers whose inputs a group thins; a depthwise convolution is counted once, by its outputs.
THINNED_INPUTS = (PRUNING.prune_conv_in_channels, PRUNING.prune_linear_in_channels)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (silenced model's outputs, original's) → scalar


@dataclass(frozen=True)
class GroupCost:
    """One group of the uniform plan: its root layer, what silencing it costs, and the MACs it saves."""

    root: str
    loss: float
    macs_saved: float  # share of the whole model's MACs


def spared_groups(model: nn.Module, example: Any, config: PruneConfig, budget: float, images: torch.Tensor,
                  loss: Loss, *, keep: tuple[str, ...] = (), trace: Trace = None) -> tuple[list[str], list[GroupCost]]:
    """(root layers to spare, every group's cost): the costliest groups per MAC saved, spared in that order while
    the uniform plan's MACs plus their savings stay within ``budget`` (a share of ``model``'s MACs)."""
    plan = prune(deepcopy(model), example, config, keep=keep, images=images, trace=trace)
    costs = group_costs(model, example, plan.history, images, loss, trace)
    share, spared = plan.macs_after / plan.macs_before, []
    for group in sorted(costs, key=lambda g: g.loss / max(g.macs_saved, 1e-12), reverse=True):
        if share + group.macs_saved <= budget:
            share += group.macs_saved
            spared.append(group.root)
    return spared, costs


def group_costs(model: nn.Module, example: Any, history: PruningHistory, images: torch.Tensor, loss: Loss,
                trace: Trace = None) -> list[GroupCost]:
    """Every history step's group, silenced alone in a copy of ``model`` and scored on ``images``."""
    model = deepcopy(model).eval()
    graph = dependency_graph(model, example, trace)
    with torch.no_grad():
        total, _, macs, _ = tp.utils.count_ops_and_params(model, example, layer_wise=True)  # as cost() counts
        reference = _run(model, images, trace)
    costs = []
    for root, is_out, idxs in history:
        module = model.get_submodule(root)
        pruner = graph.get_pruner_of_module(module)
        group = graph.get_pruning_group(module, pruner.prune_out_channels if is_out else pruner.prune_in_channels,
                                        idxs)
        saved = sum(len(i) / _width(graph, dep.layer, dep.pruning_fn in SILENCED) * macs.get(dep.layer, 0)
                    for dep, i in group if dep.pruning_fn in SILENCED + THINNED_INPUTS)
        with torch.no_grad(), _silenced(group):
            costs.append(GroupCost(root, float(loss(_run(model, images, trace), reference)), saved / total))
    return costs


class _silenced:
    """Zeroes the output rows (weight and bias) the group would remove, and restores them on exit."""

    def __init__(self, group: tp.dependency.Group):
        # A long tensor even where the group is empty (a layer global pruning leaves whole), so it still indexes.
        self.rows = [(tensor, torch.as_tensor(idxs, dtype=torch.long)) for dep, idxs in group
                     if dep.pruning_fn in SILENCED
                     for tensor in (dep.layer.weight, dep.layer.bias) if tensor is not None]
        self.saved: list[torch.Tensor] = []

    def __enter__(self) -> None:
        self.saved = [tensor[idxs].clone() for tensor, idxs in self.rows]
        for tensor, idxs in self.rows:
            tensor[idxs] = 0

    def __exit__(self, *exc: object) -> None:
        for (tensor, idxs), values in zip(self.rows, self.saved):
            tensor[idxs] = values


def _run(model: nn.Module, images: torch.Tensor, trace: Trace) -> Any:
    return model(images) if trace is None else trace(model, images)


def _width(graph: tp.DependencyGraph, layer: nn.Module, outputs: bool) -> int:
    pruner = graph.get_pruner_of_module(layer)
    return pruner.get_out_channels(layer) if outputs else pruner.get_in_channels(layer)

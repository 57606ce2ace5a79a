"""Structured channel pruning of any ``nn.Module`` with Torch-Pruning's dependency graph.

Whole channels are removed (with every layer coupled to them: BatchNorm, depthwise convs, residual adds,
concatenations), so the exported ONNX and the engine really get smaller, unlike masking weights to zero.

What must keep its width is found, not listed: every layer whose output reaches a model output through
width-preserving operations only (reshape, concat, add, activation, BatchNorm, pooling, resampling) sets
the model's contract — class and box heads, a segmentation classifier, a classifier's ``fc``, YOLOX's
prediction convs — so :func:`output_layers` walks the traced graph back from the outputs and stops at the
first convolution or linear layer on each path. A model family may add hints (``keep``) on top.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

IMPORTANCES = ("magnitude", "taylor", "contribution")
# Layers that open a pruning group (Torch-Pruning's own default root types).
ROOT_TYPES = (nn.modules.conv._ConvNd, nn.Linear, nn.LSTM)

# The forward Torch-Pruning traces (model, example) → outputs, where the plain one hides layers; None = model(example).
Trace = Callable[[nn.Module, Any], Any] | None

# One pruning step, as Torch-Pruning records it: (module name, output channels?, channel indices).
PruningHistory = list[tuple[str, bool, list[int]]]


@dataclass(frozen=True)
class PruneConfig:
    """How much and what to prune (``edge compile --prune``)."""

    ratio: float = 0.5  # fraction of the channels of every prunable group to remove
    # "magnitude" (L2 of the weights), "taylor" (|weight × gradient|) or "contribution" (what a channel adds to
    # the layers that read it, on frames: ContributionImportance)
    importance: str = "magnitude"
    global_pruning: bool = False  # rank channels across layers instead of removing `ratio` of each layer
    layer_ratios: Mapping[str, float] = field(default_factory=dict)  # module name → its own ratio
    max_layer_ratio: float = 0.9  # global pruning never thins one layer more than this
    round_to: int | None = None  # keep channel counts a multiple of this (tensor cores like 8)
    taylor_batches: int = 4  # batches whose gradients Taylor importance accumulates
    # At most this share of the original MACs: the groups costliest to prune are spared while it allows
    # (compile.sensitivity); None: every group loses `ratio`.
    macs_budget: float | None = None

    def __post_init__(self):
        if not 0 < self.ratio < 1:
            raise ValueError(f"pruning ratio must be between 0 and 1, not {self.ratio}")
        if self.macs_budget is not None and not 0 < self.macs_budget <= 1:
            raise ValueError(f"the MAC budget is a share of the original's, between 0 and 1, not {self.macs_budget}")
        if self.round_to is not None and self.round_to < 1:
            raise ValueError(f"channel counts round to a multiple of 1 or more, not {self.round_to}")
        if self.importance not in IMPORTANCES:
            raise ValueError(f"importance must be one of {', '.join(IMPORTANCES)}, not '{self.importance}'")


@dataclass(frozen=True)
class PruneResult:
    """What pruning did, for the bundle's report and for replaying it on a fresh copy of the model."""

    history: PruningHistory
    kept_layers: list[str]  # layers whose output width was left alone
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int

    def to_json(self, config: PruneConfig) -> dict[str, Any]:
        return {"ratio": config.ratio, "importance": config.importance, "global": config.global_pruning,
                "layer_ratios": dict(config.layer_ratios), "macs_budget": config.macs_budget,
                "round_to": config.round_to, "kept_layers": self.kept_layers,
                "params": [self.params_before, self.params_after], "macs": [self.macs_before, self.macs_after],
                "history": self.history}


def dependency_graph(model: nn.Module, example: Any, trace: Trace = None) -> tp.DependencyGraph:
    with warnings.catch_warnings():  # unknown parameter-free ops are treated as element-wise, which is right here
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example, forward_fn=trace, verbose=False)


def output_layers(graph: tp.DependencyGraph) -> list[nn.Module]:
    """The convolution/linear layers whose output channels reach a model output without passing another one.

    Graph nodes without consumers are the model outputs; from each, the walk follows inputs through every
    parameter-free or width-preserving op and stops at the first root layer on the path.
    """
    stack = [node for node in graph.module2node.values() if not node.outputs]
    seen, found = set(), []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, ROOT_TYPES):
            found.append(node.module)
        else:
            stack.extend(node.inputs)
    return found


def prune(model: nn.Module, example: Any, config: PruneConfig, *, keep: Sequence[str] = (),
          gradient_losses: Callable[[nn.Module], Iterable[torch.Tensor]] | None = None,
          images: torch.Tensor | None = None, trace: Trace = None) -> PruneResult:
    """Prunes ``model`` in place. ``keep`` names extra modules whose output width must not change;
    ``trace`` is the forward to trace where the plain one hides layers from the graph.

    Taylor importance needs gradients: ``gradient_losses(model)`` yields scalar losses (no labels needed,
    see :mod:`compile.losses`), ``config.taylor_batches`` of which are back-propagated before ranking.
    Contribution importance needs ``images``, a batch of model inputs its activations are measured on.
    """
    model.eval()
    params_before, macs_before = cost(model, example)
    graph = dependency_graph(model, example, trace)
    names = dict(model.named_modules())
    kept = output_layers(graph) + [names[name] for name in keep]
    if config.importance == "taylor":
        if gradient_losses is None:
            raise ValueError("Taylor importance needs gradient_losses")
        _accumulate_gradients(model, gradient_losses, config.taylor_batches)
    if config.importance == "contribution" and images is None:
        raise ValueError("contribution importance needs images")
    importance = {"taylor": tp.importance.GroupTaylorImportance,
                  "contribution": lambda: ContributionImportance(model, images, trace),
                  "magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2)}[config.importance]()
    pruner = tp.pruner.BasePruner(
        model, example, importance=importance, pruning_ratio=config.ratio,
        pruning_ratio_dict={names[name]: ratio for name, ratio in config.layer_ratios.items()} or None,
        global_pruning=config.global_pruning, max_pruning_ratio=config.max_layer_ratio,
        ignored_layers=kept, round_to=config.round_to, forward_fn=trace,
        # BasePruner's defaults for these are shared dicts that it mutates: fresh ones keep runs independent.
        in_channel_groups={}, out_channel_groups={}, num_heads={}, channel_groups={},
    )
    pruner.step()
    model.zero_grad(set_to_none=True)
    params_after, macs_after = cost(model, example)
    module_names = {module: name for name, module in names.items()}
    return PruneResult(history=_plain_history(pruner.pruning_history()),
                       kept_layers=sorted(module_names[m] for m in set(kept)),
                       params_before=params_before, params_after=params_after,
                       macs_before=macs_before, macs_after=macs_after)


def replay(model: nn.Module, example: Any, history: PruningHistory, trace: Trace = None) -> nn.Module:
    """Applies a stored pruning history to a fresh copy of the unpruned model, so its pruned weights load."""
    model.eval()
    dependency_graph(model, example, trace).load_pruning_history([list(step) for step in history])
    return model


def cost(model: nn.Module, example: Any) -> tuple[int, int]:
    """(parameters, multiply-accumulates) of one forward pass on ``example``."""
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example)
    return int(params), int(macs)


class ContributionImportance(tp.importance.Importance):
    """A channel's importance: what it adds to the layers that read it, ``Σ ‖W_reader[:, c]‖ · RMS(x_c)`` over
    every convolution (ungrouped) or linear layer in its group that reads it, the RMS measured on ``images``.
    A reader's input channels map to the group's channels through ``root_idxs``: a concatenation that reads
    one layer several times (YOLOX's SPP block reads its convolution and three max-pools of it) adds up there.

    Weight magnitude alone ranks the channels of a BatchNorm-folded export (YOLOX-nano) by a scale folding
    made arbitrary: a channel's weights can be small while its output is large and steady (folded BatchNorm
    bias through SiLU), and the layers reading it relied on that level. Magnitude pruning of 2 % of YOLOX-nano's
    channels took its agreement with the teacher to 0; with this ranking and reconstruction 30 % start at 0.6.
    Groups that no such layer reads fall back to weight magnitude.
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, trace: Trace = None):
        self.rms = _input_rms(model, images, trace)
        self.magnitude = tp.importance.GroupMagnitudeImportance(p=2)

    @torch.no_grad()
    def __call__(self, group: tp.dependency.Group) -> torch.Tensor | None:
        total = None
        for position, (dep, idxs) in enumerate(group):
            layer, roots = dep.layer, group[position].root_idxs
            if dep.pruning_fn not in _READS or layer not in self.rms or getattr(layer, "groups", 1) != 1 \
                    or any(root is None for root in roots):
                continue
            reach = layer.weight.transpose(0, 1).flatten(1).norm(dim=1)  # ‖W[:, c]‖ per input channel c
            if total is None:
                total = torch.zeros(len(group[0].idxs))
            total.scatter_add_(0, torch.tensor(roots), (reach * self.rms[layer])[idxs].float())
        return self.magnitude(group) if total is None else total


_READS = (tp.pruner.function.prune_conv_in_channels, tp.pruner.function.prune_linear_in_channels)


def _input_rms(model: nn.Module, images: torch.Tensor, trace: Trace) -> dict[nn.Module, torch.Tensor]:
    """Per input channel, the root mean square of what every ungrouped convolution and linear layer reads."""
    rms: dict[nn.Module, torch.Tensor] = {}

    def measure(module: nn.Module, inputs: tuple) -> None:
        x = inputs[0].double()
        channels = 1 if isinstance(module, nn.Conv2d) else -1
        rms[module] = x.movedim(channels, 0).flatten(1).pow(2).mean(1).sqrt().float()

    handles = [m.register_forward_pre_hook(measure) for m in model.modules()
               if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)]
    try:
        with torch.no_grad():
            model(images) if trace is None else trace(model, images)
    finally:
        for handle in handles:
            handle.remove()
    return rms


def _accumulate_gradients(model: nn.Module, losses: Callable[[nn.Module], Iterable[torch.Tensor]],
                          batches: int) -> None:
    model.zero_grad(set_to_none=True)
    for count, loss in enumerate(losses(model), start=1):
        loss.backward()
        if count == batches:
            break


def _plain_history(history: Iterable[Sequence[Any]]) -> PruningHistory:
    """Torch-Pruning's history with plain ints, so it can be written to JSON and read back."""
    return [(str(name), bool(is_out), [int(i) for i in idxs]) for name, is_out, idxs in history]

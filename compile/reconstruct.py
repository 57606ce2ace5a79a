"""After pruning: every convolution re-solved by least squares to give the teacher's outputs back.

Removing channels removes their contribution to every layer that read them, and the error compounds layer
after layer. In a network with BatchNorm, recomputing its statistics after pruning takes out part of that
shift; exports such as YOLOX-nano's have BatchNorm folded into the convolutions, so there are no statistics to
recompute, and magnitude pruning of 30 % of the channels took its agreement with the teacher from 1.0 to 0.0
(even 2 % of them, one channel in most layers, did). Here each convolution, in the order the forward pass
runs them, gets the weights and bias that best reproduce the teacher's pre-activation outputs of the channels
it kept, from the inputs the pruned student really gives it (its upstream layers already re-solved): a
linear least-squares problem per convolution (per group, for depthwise ones) on a few thousand sampled
positions of a few frames, as in He et al., "Channel Pruning for Accelerating Very Deep Neural Networks"
(ICCV 2017). It needs no labels and no gradients, and gives distillation a student that already agrees.

Which teacher channel a student channel is: the pruning history replayed on a copy of the unpruned network
whose convolution weights hold their output channel's index (:func:`kept_channels`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from compile.prune import PruningHistory, Trace, replay

ROWS = 8192  # sampled output positions per convolution (over all frames)
RIDGE = 1e-3  # Tikhonov weight, relative to the mean input energy, so that dead inputs give no huge weights
MAX_FEATURES = 4608  # inputs per output channel (in_channels / groups × kernel area); larger layers are left alone


def kept_channels(fresh: nn.Module, example: torch.Tensor, history: PruningHistory,
                  trace: Trace = None) -> dict[str, torch.Tensor]:
    """For every convolution: the indices of the teacher's output channels the student kept, in order.
    ``fresh`` is an unpruned copy of the network (it is consumed)."""
    convolutions = _convolutions(fresh)
    with torch.no_grad():
        for conv in convolutions.values():
            conv.weight.copy_(torch.arange(conv.out_channels, dtype=conv.weight.dtype).view(-1, 1, 1, 1))
    replay(fresh, example, history, trace)
    return {name: conv.weight[:, 0, 0, 0].round().long() for name, conv in convolutions.items()}


def reconstruct(teacher: nn.Module, student: nn.Module, kept: dict[str, torch.Tensor], images: torch.Tensor,
                rows: int = ROWS, ridge: float = RIDGE) -> list[str]:
    """Re-solves the student's convolutions in place on ``images`` (a normalised batch); returns the names
    of those it re-solved."""
    for name, conv in _convolutions(student).items():
        if len(kept[name]) != conv.out_channels:
            raise ValueError(f"{name}: the replayed pruning history keeps {len(kept[name])} channels, the pruned "
                             f"model {conv.out_channels}; the pruner thinned this layer inconsistently")
    targets: dict[str, tuple[torch.Tensor, list[torch.Tensor]]] = {}
    solved: list[str] = []

    def keep_target(name: str) -> Callable:
        def hook(module: nn.Conv2d, inputs, output: torch.Tensor) -> None:
            positions = _positions(name, len(output), output.shape[2] * output.shape[3], rows)
            targets[name] = (_at(output[:, kept[name]], positions), positions)
        return hook

    def solve(name: str) -> Callable:
        def hook(module: nn.Conv2d, inputs) -> None:
            if _features(module) <= MAX_FEATURES and name in targets:
                _solve(module, inputs[0], *targets.pop(name), ridge)
                solved.append(name)
        return hook

    with torch.no_grad():
        _run_with_hooks(teacher, images, {name: keep_target(name) for name in _convolutions(student)}, pre=False)
        _run_with_hooks(student, images, {name: solve(name) for name in _convolutions(student)}, pre=True)
    return solved


def _convolutions(module: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: m for name, m in module.named_modules() if isinstance(m, nn.Conv2d)}


def _run_with_hooks(module: nn.Module, images: torch.Tensor, hooks: dict[str, Callable], pre: bool) -> None:
    modules = dict(module.named_modules())
    handles = [modules[name].register_forward_pre_hook(hook) if pre else modules[name].register_forward_hook(hook)
               for name, hook in hooks.items()]
    try:
        module(images)
    finally:
        for handle in handles:
            handle.remove()


def _features(conv: nn.Conv2d) -> int:
    return conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]


def _positions(name: str, batch: int, points: int, rows: int) -> list[torch.Tensor]:
    """Sampled output positions per image (flat over height × width), the same for teacher and student."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    per_image = max(1, min(points, rows // batch))
    return [torch.randperm(points, generator=generator)[:per_image] for _ in range(batch)]


def _at(maps: torch.Tensor, positions: list[torch.Tensor]) -> torch.Tensor:
    """``[B, C, H, W]`` maps at the sampled positions → ``[rows, C]``."""
    flat = maps.flatten(2)
    return torch.cat([flat[b][:, where].T for b, where in enumerate(positions)])


def _patches(conv: nn.Conv2d, inputs: torch.Tensor, positions: list[torch.Tensor]) -> torch.Tensor:
    """The input patches the sampled output positions read, ``[rows, in_channels × kernel area]``; one image
    is unfolded at a time, so that memory stays that of one image."""
    return torch.cat([F.unfold(inputs[b:b + 1], conv.kernel_size, dilation=conv.dilation, padding=conv.padding,
                               stride=conv.stride)[0][:, where].T for b, where in enumerate(positions)])


def _solve(conv: nn.Conv2d, inputs: torch.Tensor, target: torch.Tensor, positions: list[torch.Tensor],
           ridge: float) -> None:
    """Least squares (ridge-regularised normal equations, in float64) for each group's weights, and the bias
    where the convolution has one (one without keeps none, so that the module's parameters stay the same)."""
    patches = _patches(conv, inputs, positions).double()
    groups, per_group_in = conv.groups, conv.in_channels // conv.groups
    per_group_out, biased = conv.out_channels // groups, conv.bias is not None
    features = per_group_in * conv.kernel_size[0] * conv.kernel_size[1]
    x = patches.view(len(patches), groups, features).transpose(0, 1)  # [groups, rows, features]
    if biased:
        x = torch.cat([x, x.new_ones(groups, len(patches), 1)], dim=2)
    y = target.double().view(len(target), groups, per_group_out).transpose(0, 1)  # [groups, rows, out]
    gram = x.transpose(1, 2) @ x
    energy = gram.diagonal(dim1=1, dim2=2)[:, :features].mean(1).clamp(min=1e-12)
    shrink = torch.ones(x.shape[2], dtype=gram.dtype)
    shrink[features:] = 0  # the bias is not shrunk
    solution = torch.linalg.solve(gram + torch.diag_embed(ridge * energy.view(-1, 1) * shrink),
                                  x.transpose(1, 2) @ y)  # [groups, features (+ 1), out]
    weight = solution[:, :features].transpose(1, 2).reshape(conv.out_channels, per_group_in, *conv.kernel_size)
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if biased:
        conv.bias.copy_(solution[:, features].reshape(conv.out_channels).to(conv.bias.dtype))

"""ONNX export with the settings every compiled bundle relies on.

The TorchScript exporter (``dynamo=False``) traces the plain convolutional graphs compile exports
faithfully and writes ONE self-contained ``.onnx`` file (weights inside, no external-data side files),
which is what a bundle's ``files.model`` and its sha256 expect. Opset 17 is what the ONNX Runtime and
TensorRT builds of JetPack 5 and 6 both read.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

OPSET = 17
EXPORTER = "torchscript"


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, *, input_name: str,
                output_names: Sequence[str]) -> None:
    """Traces ``module`` (in eval mode) on ``example`` and writes it to ``path`` with a fixed input shape."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (see the module docstring); its deprecation
        # notices would only alarm the user.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[input_name], output_names=list(output_names), do_constant_folding=True)

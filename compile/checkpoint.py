"""Reading a user's PyTorch checkpoint safely and checking it fits a model, with one-line errors naming the file."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from edge.errors import BadInputError

# Where training scripts nest the state_dict (torchvision's reference scripts save {"model": ...}).
_NESTING_KEYS = ("model", "state_dict")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in ``path``: a plain one, or one nested under ``model`` or ``state_dict``.

    ``weights_only=True`` means a checkpoint can hold tensors and plain containers but never run code.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such checkpoint file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a bad file surfaces as pickle, zip, runtime and EOF errors alike
        raise BadInputError(f"{path}: not a loadable PyTorch checkpoint ({_root_cause(e)})") from None
    for key in _NESTING_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not loaded or not all(
            isinstance(value, torch.Tensor) for value in loaded.values()):
        raise BadInputError(f"{path}: holds no state_dict (expected a dict of tensors, or one under "
                            f"{' or '.join(repr(k) for k in _NESTING_KEYS)})")
    return dict(loaded)


def _root_cause(error: Exception) -> str:
    """The first sentence of what went wrong, on one line. torch wraps a refused pickle in paragraphs of advice
    (load with ``weights_only=False``) that must not be followed for an untrusted file, so that is dropped."""
    if isinstance(error, pickle.UnpicklingError) and error.__context__ is not None:
        error = error.__context__
    text = " ".join(str(error).split())
    return text.split(". ")[0] if text else type(error).__name__


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | Path, model_name: str) -> None:
    """Loads ``state_dict`` into ``model``; a missing, unexpected or mis-shaped key is one error line."""
    problem = first_mismatch(model.state_dict(), state_dict)
    if problem is not None:
        raise BadInputError(f"{path}: does not fit {model_name}: {problem}")
    model.load_state_dict(state_dict)


def first_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str | None:
    """The first key, in the model's order, whose presence or shape differs; then the first extra key."""
    for key, tensor in expected.items():
        if key not in given:
            return f"missing key '{key}'"
        if given[key].shape != tensor.shape:
            return f"key '{key}' has shape {list(given[key].shape)}, the model expects {list(tensor.shape)}"
    extra = next((key for key in given if key not in expected), None)
    return None if extra is None else f"unexpected key '{extra}'"

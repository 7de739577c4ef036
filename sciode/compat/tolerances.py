"""Peers' tolerances (numbers, per-element tensors or arrays, per-tensor tuples) in the form ``solve`` takes.

``solve`` takes a number or one value per component of the flat state, shape (n,), and
validates both; this only lays a peer's per-element or per-tensor values out flat.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ProblemError
from .state import FlatState

__all__ = ["flat_tolerance", "is_scalar"]


def flat_tolerance(value: Any, argument: str, state: FlatState) -> Any:
    """A number as it is; one value per element (or, for a tuple state, per tensor) as shape (n,)."""
    if isinstance(value, torch.Tensor) and value.requires_grad:
        raise ProblemError(f"{argument} cannot require gradient")
    if state.is_tuple and isinstance(value, (tuple, list)) and len(value) == len(state.sizes):
        parts = [np.broadcast_to(_array(v, argument), (size,)) for v, size in zip(value, state.sizes)]
        return torch.from_numpy(np.concatenate(parts))
    array = _array(value, argument)
    if array.size == 1:
        return float(array.reshape(-1)[0])
    if array.size != sum(state.sizes):
        raise ProblemError(f"{argument} must be a number or hold one value per element of the state "
                           f"({sum(state.sizes)}); got shape {array.shape}")
    return torch.from_numpy(array.reshape(-1).copy())


def is_scalar(value: Any) -> bool:
    return isinstance(value, float)


def _array(value: Any, argument: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ProblemError(f"{argument} must be a number or an array of numbers; got {value!r}") from exc

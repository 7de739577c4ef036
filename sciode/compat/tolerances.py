"""Peers' tolerances (numbers, per-element arrays, per-tensor tuples) as sciode's scalar rtol and atol.

sciode's error control takes one rtol and one atol. A per-element atol is still exact:
the scaled error ``e_i / (atol_i + rtol |u_i|)`` is unchanged when the state is divided
by ``atol`` and solved with ``atol = 1`` (Runge-Kutta, Rosenbrock and BDF steps commute
with a constant diagonal scaling). A per-element rtol has no such form and is refused.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..errors import ProblemError
from .state import FlatState

__all__ = ["Tolerances"]


@dataclasses.dataclass
class Tolerances:
    """Scalar rtol/atol for ``solve`` and the state's scale (None when atol is one number)."""

    rtol: float
    atol: float
    scale: torch.Tensor | None

    @classmethod
    def of(cls, rtol: Any, atol: Any, state: FlatState, dtype: torch.dtype, device: torch.device) -> "Tolerances":
        r = _per_element(rtol, "rtol", state)
        a = _per_element(atol, "atol", state)
        if r.size > 1 and not np.all(r == r.flat[0]):
            raise ProblemError("rtol per element is not supported: sciode's error control takes one relative "
                               "tolerance (a per-element atol is supported); pass rtol as a number")
        if a.size == 1 or np.all(a == a.flat[0]):
            return cls(float(r.flat[0]), float(a.flat[0]), None)
        scale = torch.as_tensor(np.broadcast_to(a, (sum(state.sizes),)).copy(), dtype=dtype, device=device)
        return cls(float(r.flat[0]), 1.0, scale)


def _per_element(value: Any, argument: str, state: FlatState) -> np.ndarray:
    """A positive finite tolerance as a float64 array: one value, or one per element of the flat state."""
    n = sum(state.sizes)
    if state.is_tuple and isinstance(value, (tuple, list)) and len(value) == len(state.sizes):
        value = np.concatenate([np.broadcast_to(_array(v, argument), (size,)) for v, size in zip(value, state.sizes)])
    array = _array(value, argument)
    if array.size not in (1, n):
        raise ProblemError(f"{argument} must be a number or hold one value per element of the state ({n}); "
                           f"got shape {array.shape}")
    if not (np.all(np.isfinite(array)) and np.all(array > 0)):
        raise ProblemError(f"{argument} must be positive and finite; got {value!r}")
    return array.reshape(-1)


def _array(value: Any, argument: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise ProblemError(f"{argument} cannot require gradient")
        value = value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ProblemError(f"{argument} must be a number or an array of numbers; got {value!r}") from exc

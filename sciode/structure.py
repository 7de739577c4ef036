"""Descriptions of a Jacobian's structure and of a mass matrix, checked when a Problem is built.

Only the *description* lives in the core: what the user may pass as ``jac_prototype`` (a boolean
mask, a torch sparse tensor, or ``Banded(lower, upper)``) and ``mass_matrix`` (an (n, n) tensor,
dense or sparse). Solver plugins turn them into colorings and linear solvers.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .errors import ProblemError

__all__ = ["Banded", "check_prototype", "check_mass_matrix"]


@dataclasses.dataclass(frozen=True)
class Banded:
    """A banded Jacobian: entry (i, j) may be nonzero only when -lower <= j - i <= upper."""

    lower: int
    upper: int

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProblemError(f"Banded({name}=...) must be a non-negative int; got {value!r}")


def check_prototype(prototype: Any, n: int) -> Any:
    """Validate ``jac_prototype``: None, Banded, an (n, n) boolean mask or an (n, n) sparse tensor."""
    if prototype is None or isinstance(prototype, Banded):
        return prototype
    if not isinstance(prototype, torch.Tensor):
        raise ProblemError("jac_prototype must be None, sciode.Banded(lower, upper), an (n, n) boolean mask or an "
                           f"(n, n) torch sparse tensor; got {type(prototype).__name__}")
    if tuple(prototype.shape) != (n, n):
        raise ProblemError(f"jac_prototype must have shape (n, n) = ({n}, {n}); got {tuple(prototype.shape)}")
    if prototype.layout == torch.strided and prototype.dtype != torch.bool:
        raise ProblemError(f"a dense jac_prototype must be a boolean mask; got dtype {prototype.dtype}")
    return prototype


def check_mass_matrix(mass: Any, u0: torch.Tensor) -> torch.Tensor | None:
    """Validate ``mass_matrix``: None or a constant (n, n) tensor of u0's dtype (dense, or sparse: kept as COO)."""
    if mass is None:
        return None
    n = u0.shape[-1]
    if not isinstance(mass, torch.Tensor):
        raise ProblemError(f"mass_matrix must be None or an (n, n) tensor; got {type(mass).__name__}")
    if tuple(mass.shape) != (n, n):
        raise ProblemError(f"mass_matrix must have shape (n, n) = ({n}, {n}); got {tuple(mass.shape)}")
    if mass.dtype != u0.dtype:
        raise ProblemError(f"mass_matrix must have u0's dtype {u0.dtype}; got {mass.dtype}")
    if mass.layout != torch.strided:
        mass = mass.to_sparse_coo().coalesce()
    entries = mass.values() if mass.is_sparse else mass
    if not bool(torch.isfinite(entries).all()):
        raise ProblemError("mass_matrix must be finite; it contains NaN or inf")
    return mass.to(u0.device)

"""The dense batched Newton matrix: build, factor once, solve many times (``linsolve="dense"``).

W = M - scale * J (scale = gamma h, per member; M the mass matrix, default I) is LU-factored with
``torch.linalg.lu_factor_ex`` for all members at once; a member whose matrix is singular
(a zero or round-off-sized pivot) or non-finite (a NaN pivot) is flagged instead of raising, so the
solver can fail that member alone. Flagged members solve with the identity so that
their (discarded) results stay finite. Autograd differentiates the factorization and the solves
natively (backprop through a Rosenbrock step reaches J's dependence on u and p).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch


def _matrix_scale(scale: Any) -> Any:
    """A per-member step (clock-shaped tensor) broadcast against (*batch, n, n)."""
    if isinstance(scale, torch.Tensor) and scale.ndim > 0:
        return scale.unsqueeze(-1)  # (*batch, 1) -> (*batch, 1, 1)
    return scale


@dataclasses.dataclass
class Factorization:
    """LU of W = M - scale*J for every member, and which members' W is unusable."""

    LU: torch.Tensor
    pivots: torch.Tensor
    bad: torch.Tensor  # (*batch,) bool: singular or non-finite
    any_bad: bool = False

    def solve(self, b: torch.Tensor, counter: Any = None) -> torch.Tensor:
        """W^-1 b for b shaped (*batch, n); increments ``counter.nlinsolve`` when given."""
        if counter is not None:
            counter.nlinsolve += 1
        return torch.linalg.lu_solve(self.LU, self.pivots, b.unsqueeze(-1)).squeeze(-1)

    def reason(self) -> str:
        return "the Newton matrix M - scale*J is singular"


def factor(J: torch.Tensor, scale: Any, mass: torch.Tensor | None = None) -> Factorization:
    """Factor M - scale*J for every member (M = I when ``mass`` is None).

    With a singular M, members frozen by per-member stepping (scale 0) factor I instead.
    """
    n = J.shape[-1]
    eye = torch.eye(n, dtype=J.dtype, device=J.device)
    scale = _matrix_scale(scale)
    if mass is None:
        W = eye - scale * J
    else:
        W = mass - scale * J
        if isinstance(scale, torch.Tensor) and scale.ndim > 0:
            W = torch.where(scale == 0, eye, W)
    LU, pivots, _ = torch.linalg.lu_factor_ex(W)  # NaN entries just propagate into LU
    diag = LU.diagonal(dim1=-2, dim2=-1).abs()
    # a zero, NaN or round-off-sized pivot (relative to the largest) makes W unusable
    ok = diag.amin(-1) > torch.finfo(J.dtype).eps * diag.amax(-1).clamp_min(1.0)
    bad = ~ok
    # a compiled step (solve(compile=True)) takes no host sync: there the selects always run
    any_bad = torch.compiler.is_compiling() or not bool(ok.all())
    if any_bad:
        LU = torch.where(bad[..., None, None], eye, LU)
        pivots = torch.where(bad[..., None], torch.arange(1, n + 1, dtype=pivots.dtype, device=pivots.device), pivots)
    return Factorization(LU, pivots, bad, any_bad)

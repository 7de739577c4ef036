"""``preconditioner="ilu"`` for ``linsolve="gmres"``: an incomplete LU of W = M - scale*J.

W's entries come from the colored (or user) Jacobian on the Problem's pattern; scipy's
``spilu`` (SuperLU's threshold ILU, with the same column ordering rule as ``sparse_lu.py``)
factors the block-diagonal matrix of all members at once, and each application is one
triangular solve pair for the whole batch. It is rebuilt exactly when the solver would
refactor a matrix, so BDF reuses it over many steps. ``apply(r, transpose=True)`` serves the
transposed solves of the gradients. An ILU that SuperLU cannot build (an exactly singular
pivot, non-finite entries) leaves GMRES unpreconditioned for that factorization.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.linalg import spilu

from .pattern import Pattern
from .sparse_lu import block_diagonal, column_ordering

#: spilu's drop tolerance: entries below it (relative to their column) are dropped from L and U
DROP_TOL = 1e-4
#: spilu's fill factor bound; SuperLU's area rule drops more entries to stay below it, and its
#: default (10) cost 13 Krylov iterations per solve on the 2-D Brusselator
FILL_FACTOR = 30


class IncompleteLU:
    """P^-1 r with P ~ W for every member; ``w`` holds W's entries on ``pattern``, shape (*batch, nnz)."""

    def __init__(self, pattern: Pattern, w: torch.Tensor) -> None:
        members = max(1, int(np.prod(w.shape[:-1])))
        values = w.detach().reshape(members, -1).cpu().numpy()
        self.device = w.device
        self.ilu = None
        if np.isfinite(values).all():
            matrix, ordering = block_diagonal(pattern, values), column_ordering(pattern)
            try:
                self.ilu = spilu(matrix, drop_tol=DROP_TOL, fill_factor=FILL_FACTOR, permc_spec=ordering)
            except RuntimeError:  # singular: no preconditioner this time
                pass

    def apply(self, r: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        if self.ilu is None:
            return r
        x = self.ilu.solve(r.detach().reshape(-1).cpu().numpy().astype(np.float64), trans="T" if transpose else "N")
        return torch.as_tensor(x, dtype=r.dtype, device=self.device).reshape(r.shape)

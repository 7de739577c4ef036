"""The mass matrix M of M du/dt = f(u, p, t) in the forms the linear solvers need.

None means the identity (an ODE). Zero rows of M are algebraic equations (an index-1 DAE):
``algebraic`` marks them, for the consistency check of the initial state.
"""
from __future__ import annotations

import torch

from sciode import ProblemError

from .pattern import Pattern


class MassMatrix:
    def __init__(self, mass: torch.Tensor | None, n: int) -> None:
        self.matrix, self.n = mass, n
        self.identity = mass is None
        self._on_pattern: dict[int, torch.Tensor] = {}

    def dense(self, like: torch.Tensor) -> torch.Tensor | None:
        if self.identity:
            return None
        m = self.matrix.to_dense() if self.matrix.is_sparse else self.matrix
        return m.to(dtype=like.dtype, device=like.device)

    def on_pattern(self, pattern: Pattern, like: torch.Tensor) -> torch.Tensor:
        """M's entries on ``pattern`` (nnz,) (its entries are part of the pattern by construction)."""
        key = id(pattern)
        if key not in self._on_pattern:
            vals = like.new_zeros(pattern.nnz)
            if self.identity:
                vals[pattern.diagonal.to(vals.device)] = 1.0
            else:
                coo = self.matrix.to_sparse_coo().coalesce()
                pos = pattern.positions(coo.indices()[0], coo.indices()[1], "mass_matrix")
                vals[pos.to(vals.device)] = coo.values().to(vals)
            self._on_pattern[key] = vals
        return self._on_pattern[key].to(dtype=like.dtype, device=like.device)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """M x for every member of x (*batch, n)."""
        return self._apply(x, transpose=False)

    def rmatvec(self, x: torch.Tensor) -> torch.Tensor:
        """M^T x for every member (gradient solves)."""
        return self._apply(x, transpose=True)

    def _apply(self, x: torch.Tensor, transpose: bool) -> torch.Tensor:
        if self.identity:
            return x
        m = self.matrix.to(x.dtype)
        m = m.t() if transpose else m
        if m.is_sparse:
            flat = x.reshape(-1, self.n)
            return torch.sparse.mm(m, flat.T).T.reshape(x.shape)
        return x @ m.T

    def algebraic(self) -> torch.Tensor | None:
        """Mask (n,) of the zero rows of M, or None when there are none."""
        if self.identity:
            return None
        m = self.matrix.to_dense() if self.matrix.is_sparse else self.matrix
        rows = (m == 0).all(-1)
        return rows if bool(rows.any()) else None

    def check_consistent(self, f0: torch.Tensor, u0: torch.Tensor) -> None:
        """Raise when the algebraic equations 0 = f_i(u0) do not hold at t0 (tolerance sqrt(eps) (1 + |u0|))."""
        rows = self.algebraic()
        if rows is None:
            return
        residual = f0.detach()[..., rows.to(f0.device)].abs()
        tol = torch.finfo(u0.dtype).eps ** 0.5 * (1 + float(u0.detach().abs().max()))
        worst = float(residual.max())
        if not worst <= tol:
            idx = torch.nonzero(rows).squeeze(-1).tolist()
            raise ProblemError(f"inconsistent initial condition for the DAE: the algebraic equations (zero rows {idx} "
                               f"of mass_matrix) must hold at t0, 0 = f_i(u0, p, t0); the largest residual is "
                               f"{worst:.3e} > {tol:.1e}. Give a u0 that satisfies them.")


"""``linsolve="sparse"``: W = M - scale*J as one SuperLU factorization for the whole batch.

scipy.sparse.linalg.splu (SuperLU with a COLAMD column ordering) factors the block-diagonal
matrix of all members at once; its solves take the transpose too (needed for gradients).
It runs on the CPU: tensors on another device go through host memory. Why scipy and not torch:
torch has no sparse LU factorization on the CPU, and SuperLU is the well-kept library that
scipy's own stiff solvers use for the same job.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

from .pattern import Pattern
from .structured import StructuredFactorization


def _block_diagonal(pattern: Pattern, values: np.ndarray) -> sp.csc_matrix:
    members, n = values.shape[0], pattern.n
    offset = (n * np.arange(members))[:, None]
    rows = (pattern.rows.numpy()[None, :] + offset).ravel()
    cols = (pattern.cols.numpy()[None, :] + offset).ravel()
    return sp.csc_matrix((values.ravel(), (rows, cols)), shape=(members * n, members * n))


class SparseFactorization(StructuredFactorization):
    """Sparse LU of W for every member; ``w`` holds W's entries on ``pattern``, shape (*batch, nnz)."""

    def __init__(self, pattern: Pattern, w: torch.Tensor, batch: torch.Size) -> None:
        self.pattern, self.w, self.batch = pattern, w, batch
        self.graph = w.requires_grad
        self.device = w.device
        n = pattern.n
        members = int(np.prod(batch)) if batch else 1
        values = w.detach().reshape(members, -1).cpu().numpy().copy()
        ok = np.isfinite(values).all(1)
        diag = pattern.diagonal.numpy()
        values[~ok] = 0.0
        values[np.ix_(~ok, diag)] = 1.0
        try:
            lu = splu(_block_diagonal(pattern, values))
            pivots = np.abs(lu.U.diagonal())
            member_of = lu.perm_c // n  # U's k-th pivot belongs to original column perm_c[k]
            worst = np.full(members, np.inf)
            biggest = np.zeros(members)
            np.minimum.at(worst, member_of, pivots)
            np.maximum.at(biggest, member_of, pivots)
            ok &= worst > np.finfo(values.dtype).eps * np.maximum(biggest, 1.0)
        except RuntimeError:  # an exactly singular member: find it by factoring members one by one
            for i in range(members):
                try:
                    splu(_block_diagonal(pattern, values[i:i + 1]))
                except RuntimeError:
                    ok[i] = False
        if not ok.all():
            values[~ok] = 0.0
            values[np.ix_(~ok, diag)] = 1.0
            lu = splu(_block_diagonal(pattern, values))
        self.lu = lu
        self.bad = torch.as_tensor(~ok, device=self.device).reshape(batch)
        self.any_bad = not bool(ok.all())

    def raw_solve(self, b: torch.Tensor, transpose: bool) -> torch.Tensor:
        rhs = b.detach().reshape(-1).cpu().numpy().astype(np.float64)
        x = self.lu.solve(rhs, trans="T" if transpose else "N")
        return torch.as_tensor(x, dtype=b.dtype, device=self.device).reshape(b.shape)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.pattern.matvec(self.w, x)

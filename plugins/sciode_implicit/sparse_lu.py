"""``linsolve="sparse"``: W = M - scale*J as one SuperLU factorization for the whole batch.

scipy.sparse.linalg.splu (SuperLU) factors the block-diagonal matrix of all members at once;
its solves take the transpose too (needed for gradients). The column ordering: none for a
pattern that fills at least half of its band (a band LU makes no fill outside the band, and
the ordering itself costs half of the factorization time at N = 2000 on the 1-D Brusselator);
else SuperLU's own advice, minimum degree on the pattern of A^T + A for a structurally
symmetric pattern (stencils; on the 2-D Brusselator half the fill-in of COLAMD and a 2.3x
faster factorization), COLAMD otherwise. The CSC structure of the block-diagonal matrix is
built once per pattern and batch size; each factorization only places the values. It runs on
the CPU: tensors on another device go through host memory. Why scipy and not torch: torch has
no sparse LU factorization on the CPU, and SuperLU is the well-kept library that scipy's own
stiff solvers use for the same job.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

from .pattern import Pattern
from .structured import StructuredFactorization


def column_ordering(pattern: Pattern) -> str:
    """SuperLU's column ordering for ``pattern`` (see the module docstring)."""
    lower, upper = pattern.bandwidth
    if (lower + upper + 1) * pattern.n <= 2 * pattern.nnz:  # a narrow band: no fill outside it as it is
        return "NATURAL"
    return "MMD_AT_PLUS_A" if pattern.symmetric else "COLAMD"


@functools.lru_cache(maxsize=8)
def _csc_structure(pattern: Pattern, members: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, indices, indptr): the CSC layout of ``members`` copies of ``pattern`` along the diagonal;
    ``order`` takes the members' values (members * nnz, row-major per member) to CSC order."""
    n, nnz = pattern.n, pattern.nnz
    offset = n * np.arange(members)[:, None]
    rows = (pattern.rows.numpy()[None, :] + offset).ravel()
    cols = (pattern.cols.numpy()[None, :] + offset).ravel()
    order = np.lexsort((rows, cols))
    indptr = np.zeros(members * n + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=members * n), out=indptr[1:])
    index = np.int32 if nnz * members < 2**31 else np.int64
    return order, rows[order].astype(index), indptr.astype(index)


def block_diagonal(pattern: Pattern, values: np.ndarray) -> sp.csc_matrix:
    """The members' matrices (values (members, nnz) on ``pattern``) along the diagonal of one CSC matrix."""
    order, indices, indptr = _csc_structure(pattern, values.shape[0])
    size = values.shape[0] * pattern.n
    return sp.csc_matrix((values.ravel()[order], indices, indptr), shape=(size, size))


class SparseFactorization(StructuredFactorization):
    """Sparse LU of W for every member; ``w`` holds W's entries on ``pattern``, shape (*batch, nnz)."""

    def __init__(self, pattern: Pattern, w: torch.Tensor, batch: torch.Size) -> None:
        self.pattern, self.w, self.batch = pattern, w, batch
        self.graph = w.requires_grad
        self.device = w.device
        self.ordering = column_ordering(pattern)
        n = pattern.n
        members = int(np.prod(batch)) if batch else 1
        values = w.detach().reshape(members, -1).cpu().numpy().copy()
        ok = np.isfinite(values).all(1)
        diag = pattern.diagonal.numpy()
        values[~ok] = 0.0
        values[np.ix_(~ok, diag)] = 1.0
        try:
            lu = splu(block_diagonal(pattern, values), permc_spec=self.ordering)
            pivots = np.empty(members * n)
            pivots[lu.perm_c] = np.abs(lu.U.diagonal())  # U's k-th pivot belongs to original column perm_c[k]
            pivots = pivots.reshape(members, n)
            ok &= pivots.min(1) > np.finfo(values.dtype).eps * np.maximum(pivots.max(1), 1.0)
        except RuntimeError:  # an exactly singular member: find it by factoring members one by one
            for i in range(members):
                try:
                    splu(block_diagonal(pattern, values[i:i + 1]), permc_spec=self.ordering)
                except RuntimeError:
                    ok[i] = False
        if not ok.all():
            values[~ok] = 0.0
            values[np.ix_(~ok, diag)] = 1.0
            lu = splu(block_diagonal(pattern, values), permc_spec=self.ordering)
        self.lu = lu
        self.bad = torch.as_tensor(~ok, device=self.device).reshape(batch)
        self.any_bad = not bool(ok.all())

    def raw_solve(self, b: torch.Tensor, transpose: bool) -> torch.Tensor:
        rhs = b.detach().reshape(-1).cpu().numpy().astype(np.float64)
        x = self.lu.solve(rhs, trans="T" if transpose else "N")
        return torch.as_tensor(x, dtype=b.dtype, device=self.device).reshape(b.shape)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.pattern.matvec(self.w, x)

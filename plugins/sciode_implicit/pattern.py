"""Sparsity patterns: the entries a structured Jacobian (and W = M - scale J) may hold, and their coloring.

A ``Pattern`` lists its entries as (row, col) index pairs, sorted by row then column, always
including the diagonal (W needs it) and the mass matrix's entries. Values live in tensors of
shape (*batch, nnz), one per member, on that shared pattern.

Coloring (Curtis, Powell & Reid 1974): columns that share no row get one color, so one
Jacobian-vector product with the sum of their unit vectors recovers all of them; rows that
share no column likewise, for vector-Jacobian products. Greedy coloring in natural order gives
the optimal l + u + 1 colors on a band and 3 on a tridiagonal.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from sciode import ProblemError
from sciode.structure import Banded


@dataclasses.dataclass(frozen=True, eq=False)
class Pattern:
    """Entries (rows[k], cols[k]) of an n x n matrix, row-major sorted, the diagonal included."""

    rows: torch.Tensor
    cols: torch.Tensor
    n: int

    @property
    def nnz(self) -> int:
        return int(self.rows.numel())

    @functools.cached_property
    def bandwidth(self) -> tuple[int, int]:
        """(lower, upper): the largest i - j and j - i among the entries."""
        d = self.rows - self.cols
        return max(int(d.max()), 0), max(int(-d.min()), 0)

    @functools.cached_property
    def symmetric(self) -> bool:
        """Whether the pattern equals its transpose (structurally symmetric, as stencils are)."""
        key = torch.sort(self.cols * self.n + self.rows).values
        return bool(torch.equal(key, self.rows * self.n + self.cols))

    @functools.cached_property
    def diagonal(self) -> torch.Tensor:
        """Positions of the entries (i, i), i = 0 .. n-1."""
        return torch.nonzero(self.rows == self.cols).squeeze(-1)

    @functools.cached_property
    def full_band(self) -> bool:
        """Whether the pattern is every entry of its band (as a ``Banded`` prototype gives)."""
        lower, upper = self.bandwidth
        width = lower + upper + 1
        return self.nnz == width * self.n - lower * (lower + 1) // 2 - upper * (upper + 1) // 2 and width <= self.n

    @functools.cached_property
    def column_coloring(self) -> tuple[int, torch.Tensor]:
        """(number of colors, color of each column): no two columns of one color share a row."""
        if self.full_band:
            return self._band_coloring()
        a = self.scipy_matrix(np.ones(self.nnz, dtype=np.int8), sp.csc_matrix)
        return _greedy((a.T @ a).tocsr(), self.n)

    @functools.cached_property
    def row_coloring(self) -> tuple[int, torch.Tensor]:
        """(number of colors, color of each row): no two rows of one color share a column."""
        if self.full_band:
            return self._band_coloring()
        a = self.scipy_matrix(np.ones(self.nnz, dtype=np.int8), sp.csr_matrix)
        return _greedy((a @ a.T).tocsr(), self.n)

    def _band_coloring(self) -> tuple[int, torch.Tensor]:
        """On a full band of width w, lines i and j share an entry exactly when |i - j| < w: i mod w is
        the coloring greedy finds (and optimal, a row holding w entries), without the O(n) Python loop."""
        lower, upper = self.bandwidth
        width = lower + upper + 1
        return width, torch.arange(self.n) % width

    def scipy_matrix(self, values: np.ndarray, kind: Any = sp.csr_matrix) -> Any:
        return kind((values, (self.rows.numpy(), self.cols.numpy())), shape=(self.n, self.n))

    def to(self, device: torch.device) -> Pattern:
        return self if self.rows.device == device else Pattern(self.rows.to(device), self.cols.to(device), self.n)

    def to_dense(self, values: torch.Tensor) -> torch.Tensor:
        """(*batch, n, n) from (*batch, nnz)."""
        index = (self.rows * self.n + self.cols).to(values.device)
        out = values.new_zeros(values.shape[:-1] + (self.n * self.n,)).index_copy(-1, index, values)
        return out.reshape(values.shape[:-1] + (self.n, self.n))

    def gather(self, dense: torch.Tensor) -> torch.Tensor:
        """(*batch, nnz) from a (*batch, n, n) matrix."""
        return dense[..., self.rows.to(dense.device), self.cols.to(dense.device)]

    def matvec(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A @ x for every member: values (*batch, nnz) or (nnz,), x (*batch, n)."""
        rows, cols = self.rows.to(x.device), self.cols.to(x.device)
        prod = values * x[..., cols]
        return prod.new_zeros(prod.shape[:-1] + (self.n,)).index_add(-1, rows, prod)

    def positions(self, rows: torch.Tensor, cols: torch.Tensor, what: str) -> torch.Tensor:
        """Where the entries (rows, cols) sit in this pattern; an error naming ``what`` if any is missing."""
        key = self.rows * self.n + self.cols
        query = rows.cpu() * self.n + cols.cpu()
        pos = torch.searchsorted(key, query).clamp_max(self.nnz - 1)
        if not bool((key[pos] == query).all()):
            raise ProblemError(f"{what} has nonzero entries outside jac_prototype's pattern; add them to jac_prototype")
        return pos


def _greedy(conflicts: sp.csr_matrix, n: int) -> tuple[int, torch.Tensor]:
    """Smallest-available-color greedy coloring of a conflict graph, in natural order."""
    color = np.full(n, -1, dtype=np.int64)
    indptr, indices = conflicts.indptr, conflicts.indices
    for j in range(n):
        taken = set(color[indices[indptr[j]:indptr[j + 1]]].tolist())
        c = 0
        while c in taken:
            c += 1
        color[j] = c
    return int(color.max()) + 1, torch.as_tensor(color)


def _entries(prototype: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(prototype, Banded):
        i = torch.arange(n).repeat_interleave(prototype.lower + prototype.upper + 1)
        j = i + torch.arange(-prototype.lower, prototype.upper + 1).repeat(n)
        keep = (j >= 0) & (j < n)
        return i[keep], j[keep]
    if prototype.layout != torch.strided:
        coo = prototype.to_sparse_coo().coalesce()
        idx = coo.indices()[:, coo.values() != 0] if coo.dtype == torch.bool else coo.indices()
        return idx[0].cpu(), idx[1].cpu()
    idx = torch.nonzero(prototype.cpu())
    return idx[:, 0], idx[:, 1]


def make_pattern(n: int, *sources: Any) -> Pattern:
    """The union of the diagonal and each source's entries (a Banded, a mask, a sparse or dense matrix)."""
    rows, cols = [torch.arange(n)], [torch.arange(n)]
    for source in sources:
        if source is None:
            continue
        if isinstance(source, torch.Tensor) and source.layout == torch.strided and source.dtype != torch.bool:
            source = source != 0
        i, j = _entries(source, n)
        rows.append(i)
        cols.append(j)
    key = torch.unique(torch.cat(rows) * n + torch.cat(cols))  # sorted
    return Pattern(key // n, key % n, n)

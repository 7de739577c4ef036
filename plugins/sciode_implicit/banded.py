"""``linsolve="banded"``: W = M - scale*J as one LAPACK band LU for the whole batch.

The members' band matrices are stacked along the diagonal into one band matrix of size
members * n with the same bandwidths (members do not couple), factored by one ``?gbtrf`` call
and solved by one ``?gbtrs`` call (scipy.linalg.lapack; CPU, tensors on another device go
through host memory). Memory and work are O(members * n * bandwidth).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import lapack

from .pattern import Pattern
from .structured import StructuredFactorization


class BandedFactorization(StructuredFactorization):
    """Band LU of W for every member; ``w`` holds W's entries on ``pattern``, shape (*batch, nnz)."""

    def __init__(self, pattern: Pattern, w: torch.Tensor, batch: torch.Size) -> None:
        self.pattern, self.w, self.batch = pattern, w, batch
        self.graph = w.requires_grad
        self.dtype, self.device = w.dtype, w.device
        n, (kl, ku) = pattern.n, pattern.bandwidth
        self.kl, self.ku = kl, ku
        members = int(np.prod(batch)) if batch else 1
        values = w.detach().reshape(members, -1).cpu().numpy()
        rows, cols = pattern.rows.numpy(), pattern.cols.numpy()
        ab = np.zeros((2 * kl + ku + 1, members * n), dtype=values.dtype)
        band_row = np.broadcast_to(kl + ku + rows - cols, values.shape)
        ab[band_row, cols[None, :] + n * np.arange(members)[:, None]] = values
        gbtrf, self._gbtrs = lapack.get_lapack_funcs(("gbtrf", "gbtrs"), (ab,))
        lu, piv, _ = gbtrf(ab.copy(), kl, ku)
        pivots = np.abs(lu[kl + ku]).reshape(members, n)
        with np.errstate(invalid="ignore"):
            ok = pivots.min(1) > np.finfo(values.dtype).eps * np.maximum(pivots.max(1), 1.0)
        ok &= np.isfinite(values).all(1)
        if not ok.all():  # unusable members solve with the identity instead
            block = ab.reshape(ab.shape[0], members, n)
            block[:, ~ok] = 0.0
            block[kl + ku, ~ok] = 1.0
            lu, piv, _ = gbtrf(ab, kl, ku)
        self.lu, self.piv = lu, piv
        self.bad = torch.as_tensor(~ok, device=self.device).reshape(batch)
        self.any_bad = not bool(ok.all())

    def raw_solve(self, b: torch.Tensor, transpose: bool) -> torch.Tensor:
        rhs = b.detach().reshape(-1, 1).cpu().numpy().astype(self.lu.dtype)
        x, _ = self._gbtrs(self.lu, self.kl, self.ku, rhs, self.piv, trans=int(transpose))
        return torch.as_tensor(x, device=self.device).reshape(b.shape)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.pattern.matvec(self.w, x)

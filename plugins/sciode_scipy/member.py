"""One member of a (possibly batched) Problem as NumPy callables for scipy.

f is always called on the whole batch, with the member's state in its own row and the
other members held at their initial states, and the member's row is returned. That
works for any layout of ``p`` (shared, per member, nested dicts, nn.Module parameters)
without guessing which tensors are per member, at the price of evaluating the batch
for every call: this bridge is a trusted reference, not a fast path.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

import sciode


class MemberFunctions:
    """f(t, y) and jac(t, y) for member ``index`` (a flat index into the batch)."""

    def __init__(self, problem: sciode.ODEProblem, index: int) -> None:
        self.problem = problem
        self.batch = problem.batch_shape
        self.n = problem.state_size
        self.index = index
        self.dtype, self.device = problem.u0.dtype, problem.u0.device
        self.base = problem.u0.detach().reshape(-1, self.n).clone()

    def _state(self, t: float, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        yt = torch.as_tensor(y, dtype=self.dtype, device=self.device)
        tt = torch.tensor(t, dtype=self.dtype, device=self.device)
        if not self.batch:
            return tt, yt
        full = self.base.clone()
        full[self.index] = yt
        return tt, full.reshape(self.batch + (self.n,))

    def _row(self, value: torch.Tensor) -> np.ndarray:
        if value.layout != torch.strided:  # a sparse Jacobian: scipy takes a sparse matrix
            value = value.to_sparse_coo().coalesce()
            if self.batch:
                value = value.to_dense()  # one member's block of a batched sparse tensor
            else:
                idx = value.indices().cpu().numpy()
                vals = value.values().detach().cpu().double().numpy()
                return sp.csc_matrix((vals, (idx[0], idx[1])), shape=tuple(value.shape))
        if self.batch:
            value = value.reshape((-1,) + value.shape[len(self.batch):])[self.index]
        return value.detach().cpu().numpy().astype(np.float64)

    def f(self, t: float, y: np.ndarray) -> np.ndarray:
        tt, u = self._state(t, y)
        with torch.no_grad():
            return self._row(self.problem.f(u, self.problem.p, tt))

    def event(self, event: sciode.Event) -> Callable[[float, np.ndarray], float]:
        """The member's condition as scipy reads an event: a function with ``terminal`` and ``direction``."""
        def condition(t: float, y: np.ndarray) -> float:
            tt, u = self._state(t, y)
            with torch.no_grad():
                value = event.condition(u, self.problem.p, tt)
            value = torch.as_tensor(value).reshape(-1)
            return float(value[self.index] if self.batch else value[0])

        condition.terminal = event.stop_after if event.stop_after else False  # scipy: True/False or a count
        condition.direction = float(event.direction)
        return condition

    def jac(self) -> Callable[[float, np.ndarray], np.ndarray] | None:
        if self.problem.jac is None:
            return None  # scipy approximates it by finite differences

        def jacobian(t: float, y: np.ndarray) -> np.ndarray:
            tt, u = self._state(t, y)
            with torch.no_grad():
                return self._row(self.problem.jac(u, self.problem.p, tt))

        return jacobian


def sparsity(prototype: object, n: int) -> sp.csc_matrix:
    """A ``jac_prototype`` (mask, sparse tensor or sciode.Banded) as scipy's ``jac_sparsity``."""
    if isinstance(prototype, sciode.Banded):
        offsets = list(range(-prototype.lower, prototype.upper + 1))
        return sp.diags([np.ones(n - abs(k)) for k in offsets], offsets, shape=(n, n), format="csc")
    if prototype.layout != torch.strided:
        coo = prototype.to_sparse_coo().coalesce()
        idx = coo.indices().cpu().numpy()
        return sp.csc_matrix((np.ones(idx.shape[1]), (idx[0], idx[1])), shape=(n, n))
    return sp.csc_matrix(prototype.cpu().numpy().astype(np.float64))

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
        if self.batch:
            value = value.reshape((-1,) + value.shape[len(self.batch):])[self.index]
        return value.detach().cpu().numpy().astype(np.float64)

    def f(self, t: float, y: np.ndarray) -> np.ndarray:
        tt, u = self._state(t, y)
        with torch.no_grad():
            return self._row(self.problem.f(u, self.problem.p, tt))

    def jac(self) -> Callable[[float, np.ndarray], np.ndarray] | None:
        if self.problem.jac is None:
            return None  # scipy approximates it by finite differences

        def jacobian(t: float, y: np.ndarray) -> np.ndarray:
            tt, u = self._state(t, y)
            with torch.no_grad():
                return self._row(self.problem.jac(u, self.problem.p, tt))

        return jacobian

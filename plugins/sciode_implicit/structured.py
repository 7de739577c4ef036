"""What every non-dense linear solver shares: a differentiable solve of W x = b.

The banded, sparse and Krylov solvers work outside autograd (LAPACK, SuperLU, a Krylov loop).
Gradients come from two facts:
- x = W^-1 b is linear in b, so its backward pass is one solve with W^T (``raw_solve(g,
  transpose=True)``): that is all the implicit-function step of the Newton solvers needs;
- when W itself carries a graph (backprop through a Rosenbrock step differentiates J), the
  solve returns x* + S(b - W x*) with x* the detached solution and S the linear solve above:
  its value is x*, and its derivative W^-1 (db - dW x*) is exactly that of W^-1 b.
"""
from __future__ import annotations

from typing import Any

import torch


class _LinearSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fact: StructuredFactorization, b: torch.Tensor) -> torch.Tensor:
        ctx.fact = fact
        return fact.raw_solve(b, transpose=False)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.fact.raw_solve(grad.contiguous(), transpose=True)


class StructuredFactorization:
    """Base of the banded, sparse and Krylov solvers of W = M - scale*J.

    Subclasses implement ``raw_solve(b, transpose)`` (no autograd) and ``apply(x)`` (W @ x with
    autograd, used only when W carries a graph); ``bad`` flags unusable members.
    """

    bad: torch.Tensor
    any_bad: bool = False
    graph: bool = False

    def raw_solve(self, b: torch.Tensor, transpose: bool) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reason(self) -> str:
        return "the Newton matrix M - scale*J is singular"

    def solve(self, b: torch.Tensor, counter: Any = None) -> torch.Tensor:
        """W^-1 b for b shaped (*batch, n), differentiable in b (and in W when it has a graph)."""
        if counter is not None:
            counter.nlinsolve += 1
        if not torch.is_grad_enabled() or not (b.requires_grad or self.graph):
            with torch.no_grad():
                return self.raw_solve(b.detach(), transpose=False)
        if not self.graph:
            return _LinearSolve.apply(self, b)
        with torch.no_grad():
            x = self.raw_solve(b.detach(), transpose=False)
        return x + _LinearSolve.apply(self, b - self.apply(x))


def member_scale(scale: Any, batch: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The step scale as a (*batch, 1) tensor (a float or a clock-shaped tensor in)."""
    s = torch.as_tensor(scale, dtype=dtype, device=device)
    return s.expand(batch + (1,)) if s.ndim == 0 else s.reshape(batch + (1,))

"""One autograd.Function for every sensitivity that computes its own backward pass.

A sensitivity builds a *run* object with ``forward() -> Solution`` (the forward
solve, called with autograd off) and ``backward(grad_u, needs) -> grads`` (one
gradient per differentiable input, zeros rather than None for inputs that need a
gradient but do not affect the output). :func:`bridged_solve` connects the run's
output ``sol.u`` to u0 and the parameters through :class:`SolveFunction`.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch.autograd.function import once_differentiable

import sciode

from .inputs import DifferentiableInputs

__all__ = ["Run", "SolveFunction", "bridged_solve", "zero_fill"]


class Run(Protocol):
    def forward(self) -> sciode.Solution: ...

    def backward(self, grad_u: torch.Tensor, needs: tuple[bool, ...]) -> list[torch.Tensor | None]: ...


class SolveFunction(torch.autograd.Function):
    """u0, *params -> sol.u, with the backward pass delegated to the run."""

    @staticmethod
    def forward(ctx: Any, run: Run, holder: list, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        sol = run.forward()
        holder.append(sol)
        ctx.run = run
        return sol.u

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_u: torch.Tensor) -> tuple:  # type: ignore[override]
        needs = tuple(ctx.needs_input_grad[2:])
        grads = ctx.run.backward(grad_u, needs)
        return (None, None, *grads)


def zero_fill(grads: list[torch.Tensor | None], inputs: list[torch.Tensor], needs: tuple[bool, ...]) -> list[torch.Tensor | None]:
    """Zeros for inputs that need a gradient but got none; None for the rest."""
    return [(g if g is not None else torch.zeros_like(x)) if need else None for g, x, need in zip(grads, inputs, needs)]


def bridged_solve(run: Run, inputs: DifferentiableInputs) -> sciode.Solution:
    """Run the forward solve and attach the run's backward pass to ``sol.u``."""
    if not inputs.any_requires_grad():
        with torch.no_grad():
            return run.forward()
    holder: list = []
    u = SolveFunction.apply(run, holder, *inputs.all())
    sol = holder[0]
    sol.u = u
    return sol

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
from sciode.loop import event_time_gradients

from .inputs import DifferentiableInputs

__all__ = ["Run", "SolveFunction", "bridged_solve", "zero_fill"]


class Run(Protocol):
    def forward(self) -> sciode.Solution: ...

    def backward(self, grad_u: torch.Tensor, needs: tuple[bool, ...]) -> list[torch.Tensor | None]: ...


def event_states(sol: sciode.Solution) -> list[torch.Tensor]:
    """The state of every event occurrence, in a fixed order (events by name, then occurrences)."""
    return [occ.u for name in sorted(sol.events) for occ in sol.events[name].occurrences]


class SolveFunction(torch.autograd.Function):
    """u0, *params -> (sol.u, *event states), with the backward pass delegated to the run.

    A run whose backward can take the event states' cotangents says so with
    ``differentiates_events = True`` and receives them as ``grad_events``.
    """

    @staticmethod
    def forward(ctx: Any, run: Run, holder: list, *inputs: torch.Tensor) -> tuple:  # type: ignore[override]
        sol = run.forward()
        holder.append(sol)
        ctx.run = run
        extra = event_states(sol) if getattr(run, "differentiates_events", False) else []
        ctx.n_extra = len(extra)
        return (sol.u, *extra)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_u: torch.Tensor, *grad_events: torch.Tensor) -> tuple:  # type: ignore[override]
        needs = tuple(ctx.needs_input_grad[2:])
        if ctx.n_extra:
            grads = ctx.run.backward(grad_u, needs, grad_events=list(grad_events))
        else:
            grads = ctx.run.backward(grad_u, needs)
        return (None, None, *grads)


def zero_fill(grads: list[torch.Tensor | None], inputs: list[torch.Tensor],
              needs: tuple[bool, ...]) -> list[torch.Tensor | None]:
    """Zeros for inputs that need a gradient but got none; None for the rest."""
    return [(g if g is not None else torch.zeros_like(x)) if need else None
            for g, x, need in zip(grads, inputs, needs)]


def bridged_solve(run: Run, inputs: DifferentiableInputs) -> sciode.Solution:
    """Run the forward solve and attach the run's backward pass to ``sol.u``."""
    if not inputs.any_requires_grad():
        with torch.no_grad():
            return run.forward()
    holder: list = []
    u, *states = SolveFunction.apply(run, holder, *inputs.all())
    sol = holder[0]
    sol.u = u
    if states:  # rebuild the event records from the differentiable states, then give times their gradients
        it = iter(states)
        records = {}
        for name in sorted(sol.events):
            rec = sol.events[name]
            records[name] = rec.with_states([next(it) for _ in rec.occurrences]) if rec.occurrences else rec
        sol.events = event_time_gradients(records, run.options.events, sol.problem)
    return sol

"""``backprop``: autograd through every operation of the solver (the discrete gradient).

The core loop runs with autograd on, exactly as ``solve(..., sensealg=None)`` does.
What the named algorithm adds: backward stats (``sol.stats["backward_nfe"]`` counts
the vector-Jacobian products of f autograd evaluates, one per recorded evaluation
of f, counted by a hook as they happen) and zero gradients instead of None for
parameters of f that do not influence the output. Memory grows linearly with the
number of steps (every stage of every step stays in the graph). With ``compile=True``
the steps are compiled graphs, where no hook can run: ``backward_nfe`` is then absent.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

import sciode

from .inputs import DifferentiableInputs

__all__ = ["Backprop"]


class _AttachParameters(torch.autograd.Function):
    """Identity on ``u`` that hands zeros to every parameter (so none ends up with None)."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.meta = [(p.shape, p.dtype, p.device) for p in params]
        return u.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:  # type: ignore[override]
        zeros = [torch.zeros(s, dtype=d, device=dev) if need else None
                 for (s, d, dev), need in zip(ctx.meta, ctx.needs_input_grad[1:])]
        return (grad, *zeros)


class Backprop(sciode.Sensitivity):
    """Differentiate the solver's operations with autograd: exact gradient of the discrete solution."""

    name = "backprop"
    summary = "Autograd through the solver's operations: exact discrete gradient, memory linear in steps."
    reference = "Automatic differentiation of the numerical solution ('discretise-then-optimise')"

    def __init__(self) -> None:
        pass

    def solve(self, problem: sciode.ODEProblem, solver: sciode.Solver, options: sciode.LoopOptions) -> sciode.Solution:
        inputs = DifferentiableInputs.of(problem)
        if not inputs.any_requires_grad():
            sol = sciode.integrate(problem, solver, options)
            sol.stats["backward_nfe"] = 0
            return sol
        stats = {"backward_nfe": 0}

        def count(_: torch.Tensor) -> None:
            if "backward_nfe" in stats:  # absent when the steps were compiled
                stats["backward_nfe"] += 1

        f = problem.f

        def counted(u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
            out = f(u, p, t)
            if isinstance(out, torch.Tensor) and out.requires_grad and not torch.compiler.is_compiling():
                out.register_hook(count)
            return out

        counting = copy.copy(problem)
        counting.f = counted
        sol = sciode.integrate(counting, solver, options)
        sol.problem = problem
        stats.update(sol.stats, backward_nfe=0)
        if "compile_time" in stats:  # a hook cannot run inside a compiled step: the backward VJPs go uncounted
            del stats["backward_nfe"]
        sol.stats = stats  # the hook updates this dict during backward
        params = [x for x in inputs.params if x.requires_grad]
        if params:
            sol.u = _AttachParameters.apply(sol.u, *params)
        return sol

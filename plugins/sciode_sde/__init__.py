"""SDE solvers for ``sciode.SDEProblem``, through torchsde.

Each solver owns its loop: ``solve(prob, "euler_maruyama", dt=..., seed=...)``
adapts the problem's ``f(u, p, t)`` / ``g(u, p, t)`` to torchsde internally and
returns a ``sciode.Solution``. ``sensealg="adjoint"`` uses torchsde's stochastic
adjoint (the exact reversible-Heun adjoint for ``reversible_heun``).
"""
from __future__ import annotations

import sciode

from .methods import METHODS, SDEMethod
from .solver import SDE_SOLVERS, TorchsdeSolver

__all__ = ["METHODS", "SDEMethod", "SDE_SOLVERS", "TorchsdeSolver"]


@sciode.hookimpl
def sciode_add_solvers() -> list[type]:
    return list(SDE_SOLVERS)

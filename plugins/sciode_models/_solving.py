"""How the models call ``sciode.solve``: option checking, one solve, failure handling.

Models hold a solver and a sensitivity *by name* (or instance) and hand them to
``sciode.solve``; this module validates those names against the registry when a
model is built, so a typo fails at construction rather than mid-training.
"""
from __future__ import annotations

from typing import Any

import torch

import sciode

__all__ = ["check_solver_choice", "configure_solve", "solve_to_end", "ModelSolveError"]


class ModelSolveError(sciode.SciodeError, RuntimeError):
    """A model's internal solve did not reach the end of its time span."""


def check_solver_choice(solver: Any, sensealg: Any) -> None:
    """Raise ``sciode.ProblemError`` now if a solver/sensitivity name is not registered."""
    if isinstance(solver, str):
        sciode.lookup("solver", solver, "solver")
    elif not isinstance(solver, sciode.Solver):
        raise sciode.ProblemError(f"solver must be a registered name or a sciode.Solver; got {type(solver).__name__}")
    if isinstance(sensealg, str):
        sciode.lookup("sensitivity", sensealg, "sensealg")
    elif sensealg is not None and not isinstance(sensealg, sciode.Sensitivity):
        raise sciode.ProblemError("sensealg must be None, a registered name or a sciode.Sensitivity; "
                                  f"got {type(sensealg).__name__}")


def configure_solve(model: torch.nn.Module, tspan: Any, solver: Any, sensealg: Any, defaults: dict[str, Any],
                    solve_options: dict[str, Any]) -> None:
    """Validate and store a model's solve settings: ``tspan``, ``solver``, ``sensealg``, ``solve_options``."""
    check_solver_choice(solver, sensealg)
    model.tspan = (float(tspan[0]), float(tspan[1]))
    if model.tspan[0] == model.tspan[1]:
        raise sciode.ProblemError(f"tspan must hold two different times; got {tspan!r}")
    model.solver = solver
    model.sensealg = sensealg
    model.solve_options = {**defaults, **solve_options}


def solve_to_end(field: torch.nn.Module, u0: torch.Tensor, tspan: tuple[float, float], solver: Any,
                 sensealg: Any, options: dict[str, Any], what: str) -> tuple[torch.Tensor, dict[str, int]]:
    """Integrate ``field`` from ``u0`` over ``tspan``; return the final state and the solve stats.

    Every accepted step is kept (``saveat=None``) without dense output, so the final
    state is the solver's own last step rather than an interpolated value. A solve that
    stops early raises :class:`ModelSolveError` with the loop's message: a model output
    taken from a partial trajectory would be silently wrong.
    """
    problem = sciode.ODEProblem(field, u0, tspan)
    sol = sciode.solve(problem, solver, sensealg=sensealg, dense=False, **options)
    if not sol.successful:
        raise ModelSolveError(f"{what}: the solve did not reach t = {tspan[1]:g}: {sol.message}")
    return sol.u[-1], sol.stats

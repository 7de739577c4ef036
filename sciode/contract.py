"""What a plugin class must be, checked when the plugin registers and, by one trial step, when a solver is first used.

Registration checks what the class declares (a solver implements ``step``, or ``run``
when it brings its own loop; ``order`` is a positive number; ``adaptive`` a bool;
``problem_types`` Problem classes; a sensitivity implements ``solve``). The first
lookup of a solver by name then takes one step of u' = -u with it and checks the
result: a ``StepResult`` whose ``u`` has the state's shape and, for an adaptive
solver, an ``error`` estimate of that shape. A broken contract is a
:class:`sciode.PluginError` naming the plugin and what it broke, instead of an
``AttributeError`` somewhere inside the loop.
"""
from __future__ import annotations

import numbers
from typing import Any

import torch

from .problems import ODEProblem
from .sensitivity import Sensitivity
from .solver import RHS, Solver, StepResult

__all__ = ["declared_faults", "trial_step_fault"]


def _overrides(cls: type, base: type, method: str) -> bool:
    return getattr(cls, method) is not getattr(base, method)


def declared_faults(kind: str, cls: type) -> list[str]:
    """Contract violations visible on the class itself (empty when there are none)."""
    faults = []
    if kind == "solver":
        if cls.owns_loop and not _overrides(cls, Solver, "run"):
            faults.append("owns_loop = True but run(problem, options, sensealg) is not implemented")
        if not cls.owns_loop and not _overrides(cls, Solver, "step"):
            faults.append("step(rhs, t, u, dt, state) is not implemented")
        order = cls.order
        if isinstance(order, bool) or not isinstance(order, numbers.Real) or not order > 0:
            faults.append(f"order must be a positive number; it is {order!r}")
        if not isinstance(cls.adaptive, bool):
            faults.append(f"adaptive must be True or False; it is {cls.adaptive!r}")
        types = cls.problem_types
        if not isinstance(types, tuple) or not types or not all(isinstance(t, type) and issubclass(t, ODEProblem)
                                                                 for t in types):
            faults.append(f"problem_types must be a non-empty tuple of sciode Problem classes; it is {types!r}")
    elif kind == "sensitivity" and not _overrides(cls, Sensitivity, "solve"):
        faults.append("solve(problem, solver, options) is not implemented")
    return faults


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean(-1).sqrt()


def trial_step_fault(cls: type) -> str | None:
    """Take one step of u' = -u (two members, float64) and say what is wrong with the result, if anything.

    Solvers that own their loop, that solve only other Problem types, or whose
    constructor needs arguments cannot be tried this way and pass.
    """
    if cls.owns_loop or ODEProblem not in cls.problem_types:
        return None
    try:
        solver = cls()
    except Exception:  # noqa: BLE001 - required options: nothing to try without them
        return None
    u0 = torch.tensor([[1.0, 0.5], [2.0, -1.0]], dtype=torch.float64)
    problem = ODEProblem(lambda u, p, t: -u, u0, (0.0, 1.0))
    rhs = RHS(problem, 1e-6, 1e-9, _rms)
    t0 = torch.tensor(0.0, dtype=torch.float64)
    try:
        with torch.no_grad():
            state = solver.init(rhs, t0, u0, rhs(t0, u0))
            result: Any = solver.step(rhs, t0, u0, 0.01, state)
    except NotImplementedError as exc:
        return f"step() raised NotImplementedError({exc})"
    except Exception as exc:  # noqa: BLE001 - any failure on the simplest problem breaks the contract
        return f"a step of u' = -u raised {type(exc).__name__}: {exc}"
    if not isinstance(result, StepResult):
        return f"step() returned {type(result).__name__}; it must return sciode.StepResult(u, error, state, dense)"
    if not isinstance(result.u, torch.Tensor) or result.u.shape != u0.shape:
        got = tuple(result.u.shape) if isinstance(result.u, torch.Tensor) else type(result.u).__name__
        return f"step() returned u of shape {got}; expected the state's shape {tuple(u0.shape)}"
    if cls.adaptive and (not isinstance(result.error, torch.Tensor) or result.error.shape != u0.shape):
        got = "None" if result.error is None else getattr(result.error, "shape", type(result.error).__name__)
        return (f"adaptive = True but step() returned error {got}; an adaptive solver returns a local error "
                f"estimate shaped like u {tuple(u0.shape)}")
    return None

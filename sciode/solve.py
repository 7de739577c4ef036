"""``solve``: validate everything up front, then hand over to the sensitivity or the loop."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .controller import PIController
from .errors import ProblemError
from .loop import LoopOptions, integrate
from .problems import ODEProblem
from .registry import registry
from .sensitivity import Sensitivity
from .solution import Solution
from .solver import Solver

__all__ = ["solve", "resolve_solver", "resolve_sensitivity"]

STEPPING = ("shared", "per_member")


def _positive(value: Any, argument: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProblemError(f"{argument} must be a positive finite number; got {value!r}")
    return float(value)


def resolve_solver(solver: str | Solver, options: dict[str, Any], problem: ODEProblem) -> Solver:
    """A Solver instance from a registered name (with options) or an instance (without)."""
    if isinstance(solver, str):
        cls = registry.get("solver", solver, "solver")
        accepted = cls.options()
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ProblemError(f"solver {solver!r} does not take option(s) {unknown}; it accepts: {list(accepted) or 'no options'}")
        try:
            instance = cls(**options)
        except (TypeError, ValueError) as exc:
            raise ProblemError(f"invalid option for solver {solver!r}: {exc}") from exc
    elif isinstance(solver, Solver):
        if options:
            raise ProblemError(f"solver options {sorted(options)} were given with a Solver instance; "
                               "pass them to its constructor instead")
        instance = solver
    else:
        raise ProblemError(f"solver must be a registered name or a sciode.Solver instance; got {type(solver).__name__}")
    if not isinstance(problem, instance.problem_types):
        kinds = ", ".join(t.__name__ for t in instance.problem_types)
        raise ProblemError(f"solver {instance.name!r} solves {kinds}, not {type(problem).__name__}")
    if getattr(problem, "mass_matrix", None) is not None and not instance.supports_mass_matrix:
        raise ProblemError(f"solver {instance.name!r} cannot solve M du/dt = f with a mass_matrix; use a solver that "
                           "supports mass matrices (rodas4, rodas4p, rodas5p, bdf)")
    return instance


def resolve_sensitivity(sensealg: str | Sensitivity | None) -> Sensitivity | None:
    if sensealg is None or isinstance(sensealg, Sensitivity):
        return sensealg
    if isinstance(sensealg, str):
        return registry.get("sensitivity", sensealg, "sensealg")()
    raise ProblemError(f"sensealg must be None, a registered name or a sciode.Sensitivity; got {type(sensealg).__name__}")


def _saveat(saveat: Any, problem: ODEProblem) -> torch.Tensor | None:
    """None, a number of equal intervals, or times inside tspan, monotonic in the direction of integration."""
    if saveat is None:
        return None
    t0, t1 = problem.tspan
    dtype, device = problem.u0.dtype, problem.u0.device
    if isinstance(saveat, bool):
        raise ProblemError(f"saveat must be None, a number of intervals or a 1-D sequence of times; got {saveat!r}")
    if isinstance(saveat, int):
        if saveat < 1:
            raise ProblemError(f"saveat as a number of intervals must be >= 1; got {saveat}")
        return torch.linspace(t0, t1, saveat + 1, dtype=torch.float64).to(dtype=dtype, device=device)
    if isinstance(saveat, torch.Tensor):
        times = saveat.detach().to(torch.float64).cpu()
    elif isinstance(saveat, Sequence) and not isinstance(saveat, str):
        try:
            times = torch.tensor([float(x) for x in saveat], dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise ProblemError(f"saveat must hold real numbers; got {saveat!r}") from exc
    else:
        raise ProblemError(f"saveat must be None, a number of intervals or a 1-D sequence of times; got {type(saveat).__name__}")
    if times.ndim != 1 or times.numel() == 0:
        raise ProblemError(f"saveat must be a non-empty 1-D sequence of times; got shape {tuple(times.shape)}")
    if not bool(torch.isfinite(times).all()):
        raise ProblemError("saveat must hold finite times; it contains NaN or inf")
    lo, hi = min(t0, t1), max(t0, t1)
    slack = 1e-12 * max(1.0, abs(lo), abs(hi))
    if float(times.min()) < lo - slack or float(times.max()) > hi + slack:
        raise ProblemError(f"saveat times must lie within tspan {problem.tspan}; got [{float(times.min())}, {float(times.max())}]")
    steps = (times[1:] - times[:-1]) * problem.direction
    if bool((steps <= 0).any()):
        order = "increasing" if problem.direction > 0 else "decreasing (t1 < t0)"
        raise ProblemError(f"saveat times must be strictly {order}")
    return times.clamp(lo, hi).to(dtype=dtype, device=device)


def solve(problem: ODEProblem, solver: str | Solver = "tsit5", *, saveat: Any = None, dt: float | None = None,
          rtol: float = 1e-6, atol: float = 1e-9, sensealg: str | Sensitivity | None = None,
          max_steps: int = 100_000, progress: bool = False, stepping: str = "shared", dense: bool | None = None,
          adaptive: bool | None = None, norm: Callable[[torch.Tensor], torch.Tensor] | None = None,
          controller: PIController | None = None, **solver_options: Any) -> Solution:
    """Solve ``problem`` with ``solver`` and return a Solution.

    solver / sensealg: a registered name or an instance. saveat: None (every
    accepted step), a number of equal intervals, or a 1-D sequence of times.
    dt: the step of fixed-step solvers, the first step of adaptive ones.
    stepping: "shared" (the batch takes one step, as one coupled system) or
    "per_member" (each member has its own t, dt, accept/reject and retcode).
    dense: keep dense output for ``sol(t)`` (default: when saveat is None).
    adaptive=False runs an adaptive solver at the fixed step ``dt``.
    norm: replaces the RMS error norm; it maps the tolerance-scaled error to one
    value per member. A failed solve does not raise: check ``sol.retcode``.
    """
    if not isinstance(problem, ODEProblem):
        raise ProblemError(f"problem must be a sciode Problem (e.g. sciode.ODEProblem); got {type(problem).__name__}")
    instance = resolve_solver(solver, solver_options, problem)
    sens = resolve_sensitivity(sensealg)
    if stepping not in STEPPING:
        raise ProblemError(f"stepping must be one of {STEPPING}; got {stepping!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ProblemError(f"max_steps must be a positive int; got {max_steps!r}")
    if not isinstance(progress, bool):
        raise ProblemError(f"progress must be True or False; got {progress!r}")
    if norm is not None and not callable(norm):
        raise ProblemError(f"norm must be callable or None; got {type(norm).__name__}")
    if controller is not None and not isinstance(controller, PIController):
        raise ProblemError(f"controller must be a sciode.PIController; got {type(controller).__name__}")
    use_adaptive = instance.adaptive if adaptive is None else bool(adaptive)
    if use_adaptive and not instance.adaptive:
        raise ProblemError(f"adaptive=True, but solver {instance.name!r} has no error estimate; use a fixed dt or an adaptive solver")
    dt = _positive(dt, "dt", allow_none=True)
    if not use_adaptive and dt is None:
        raise ProblemError(f"dt is required for fixed-step solving with {instance.name!r}: pass solve(..., dt=...)")
    times = _saveat(saveat, problem)
    opts = LoopOptions(
        saveat=times, dt=dt, rtol=_positive(rtol, "rtol"), atol=_positive(atol, "atol"), max_steps=max_steps,
        per_member=stepping == "per_member", dense=(saveat is None) if dense is None else bool(dense),
        progress=progress, norm=norm, controller=controller or PIController(), adaptive=use_adaptive,
    )
    if getattr(instance, "owns_loop", False):
        solution = instance.run(problem, opts, sens)
    elif sens is None:
        solution = integrate(problem, instance, opts)
    else:
        solution = sens.solve(problem, instance, opts)
    solution.sensealg = sens
    return solution

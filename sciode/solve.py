"""``solve``: validate everything up front, then hand over to the sensitivity or the loop."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .errors import ProblemError
from .loop import LoopOptions, PIController, check_events, integrate
from .loop.attempt import COMPILE_MODES, CompileWarning, compile_mode
from .loop.compaction import threshold as compaction_threshold
from .problems import ODEProblem, SDEProblem
from .registry import registry
from .sensitivity import Sensitivity
from .solution import Solution
from .solver import Solver
from .validation import positive_int, positive_number

__all__ = ["solve", "resolve_solver", "resolve_sensitivity"]

STEPPING = ("shared", "per_member")
SOLVE_ARGUMENTS = ("saveat", "dt", "rtol", "atol", "sensealg", "max_steps", "progress", "stepping", "dense",
                   "adaptive", "norm", "controller", "events", "max_step", "min_step", "tstops", "compile")


def resolve_solver(solver: str | Solver, options: dict[str, Any], problem: ODEProblem) -> Solver:
    """A Solver instance from a registered name (with options) or an instance (without)."""
    if isinstance(solver, str):
        cls = registry.get("solver", solver, "solver")
        accepted = cls.options()
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ProblemError(f"solve() got unknown argument(s) {unknown}: not an argument of solve "
                               f"({', '.join(SOLVE_ARGUMENTS)}), nor an option of solver {solver!r} "
                               f"(its options: {list(accepted) or 'none'})")
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
    if isinstance(problem, SDEProblem) and not any(issubclass(t, SDEProblem) for t in instance.problem_types):
        raise ProblemError(f"solver {instance.name!r} is an ODE solver: it would drop the noise g of this SDEProblem; "
                           "use an SDE solver (e.g. solver=\"euler_maruyama\"; sciode.solvers() lists them)")
    if getattr(problem, "mass_matrix", None) is not None and not instance.supports_mass_matrix:
        raise ProblemError(f"solver {instance.name!r} cannot solve M du/dt = f with a mass_matrix; use a solver that "
                           "supports mass matrices (rodas4, rodas4p, rodas5p, bdf)")
    return instance


def resolve_sensitivity(sensealg: str | Sensitivity | None) -> Sensitivity | None:
    if sensealg is None or isinstance(sensealg, Sensitivity):
        return sensealg
    if isinstance(sensealg, str):
        return registry.get("sensitivity", sensealg, "sensealg")()
    raise ProblemError("sensealg must be None, a registered name or a sciode.Sensitivity; "
                       f"got {type(sensealg).__name__}")


def _saveat(saveat: Any, problem: ODEProblem) -> torch.Tensor | None:
    """None, a number of equal intervals, or times inside tspan, monotonic in the direction of integration."""
    if saveat is None:
        return None
    t0, t1 = problem.tspan
    dtype = problem.u0.real.dtype if problem.u0.is_complex() else problem.u0.dtype
    device = problem.u0.device
    if isinstance(saveat, np.ndarray):
        saveat = torch.from_numpy(saveat)
    if isinstance(saveat, np.integer):
        saveat = int(saveat)
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
        raise ProblemError("saveat must be None, a number of intervals or a 1-D sequence of times; "
                           f"got {type(saveat).__name__}")
    if times.ndim != 1 or times.numel() == 0:
        raise ProblemError(f"saveat must be a non-empty 1-D sequence of times; got shape {tuple(times.shape)}")
    if not bool(torch.isfinite(times).all()):
        raise ProblemError("saveat must hold finite times; it contains NaN or inf")
    lo, hi = min(t0, t1), max(t0, t1)
    slack = 1e-12 * max(1.0, abs(lo), abs(hi))
    if float(times.min()) < lo - slack or float(times.max()) > hi + slack:
        raise ProblemError(f"saveat times must lie within tspan {problem.tspan}; "
                           f"got [{float(times.min())}, {float(times.max())}]")
    steps = (times[1:] - times[:-1]) * problem.direction
    if bool((steps <= 0).any()):
        order = "increasing" if problem.direction > 0 else "decreasing (t1 < t0)"
        raise ProblemError(f"saveat times must be strictly {order}")
    return times.clamp(lo, hi).to(dtype=dtype, device=device)


def _tolerance(value: Any, argument: str, problem: ODEProblem) -> float | torch.Tensor:
    """A positive number, or per-component values (shape (n,)) as a tensor in u0's real dtype."""
    if isinstance(value, (torch.Tensor, np.ndarray, list, tuple)) and np.size(value) != 1:
        dtype = problem.u0.real.dtype if problem.u0.is_complex() else problem.u0.dtype
        values = torch.as_tensor(np.asarray(value, dtype=np.float64) if not isinstance(value, torch.Tensor)
                                 else value.detach(), dtype=dtype).to(problem.u0.device)
        n = problem.state_size
        if values.shape != (n,):
            raise ProblemError(f"{argument} must be a positive number or one value per state component, shape ({n},); "
                               f"got shape {tuple(values.shape)}")
        if not bool(torch.isfinite(values).all()) or not bool((values > 0).all()):
            raise ProblemError(f"{argument} must hold positive finite values; got {values.tolist()}")
        return values
    return positive_number(value, argument)


def _warn_tiny_rtol(rtol: float | torch.Tensor, problem: ODEProblem) -> None:
    dtype = problem.u0.real.dtype if problem.u0.is_complex() else problem.u0.dtype
    eps = torch.finfo(dtype).eps
    smallest = float(rtol.min()) if isinstance(rtol, torch.Tensor) else rtol
    if smallest < 100 * eps:
        warnings.warn(f"rtol = {smallest:g} is below 100 machine epsilons of {dtype} ({100 * eps:.2g}): the error "
                      "estimate is dominated by round-off there; the solve may take many steps or fail",
                      UserWarning, stacklevel=3)


def _tstops(tstops: Any, problem: ODEProblem) -> torch.Tensor | None:
    """Times the steps must land on: a 1-D sequence within tspan, sorted here in the direction of integration."""
    if tstops is None:
        return None
    try:
        raw = tstops.detach().cpu().numpy() if isinstance(tstops, torch.Tensor) else tstops
        times = torch.as_tensor(np.asarray(raw, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ProblemError(f"tstops must be a 1-D sequence of times; got {tstops!r}") from exc
    if times.ndim != 1:
        raise ProblemError(f"tstops must be a 1-D sequence of times; got shape {tuple(times.shape)}")
    if not bool(torch.isfinite(times).all()):
        raise ProblemError("tstops must hold finite times; it contains NaN or inf")
    t0, t1 = problem.tspan
    d = problem.direction
    outside = ((times - t0) * d < 0) | ((t1 - times) * d < 0)
    if bool(outside.any()):
        raise ProblemError(f"tstops must lie within tspan {problem.tspan}; got {times[outside].tolist()}")
    ordered = torch.unique_consecutive(torch.sort(times * d).values * d)
    inside = ordered[((ordered - t0) * d > 0) & ((t1 - ordered) * d > 0)]
    return inside if inside.numel() else None


def solve(problem: ODEProblem, solver: str | Solver = "tsit5", *, saveat: Any = None, dt: float | None = None,
          rtol: Any = 1e-6, atol: Any = 1e-9, sensealg: str | Sensitivity | None = None,
          max_steps: int = 100_000, progress: bool = False, stepping: str = "shared", dense: bool | None = None,
          adaptive: bool | None = None, norm: Callable[[torch.Tensor], torch.Tensor] | None = None,
          controller: PIController | None = None, events: Any = None, max_step: float | None = None,
          min_step: float | None = None, tstops: Any = None, compile: bool | str = False,
          compact: float | None = 0.5, **solver_options: Any) -> Solution:
    """Solve ``problem`` with ``solver`` and return a Solution.

    solver / sensealg: a registered name or an instance. saveat: None (every
    accepted step), a number of equal intervals, or a 1-D sequence of times.
    dt: the step of fixed-step solvers, the first step of adaptive ones.
    rtol / atol: numbers, or one value per state component (shape (n,)).
    stepping: "shared" (the batch takes one step) or "per_member" (each member has
    its own t, dt, accept/reject and retcode). events: a sciode.Event or a list.
    max_step / min_step bound adaptive steps; tstops are times every member steps to
    exactly. dense: keep dense output for ``sol(t)`` (default: when saveat is None).
    adaptive=False runs an adaptive solver at the fixed step ``dt``. norm: replaces
    the error norm (tolerance-scaled error -> one value per member). compile: True
    runs each step as one torch.compile graph (CUDA graphs on CUDA), or a
    torch.compile mode name; a step that cannot be compiled runs eagerly after a
    warning. compact: with per-member stepping, step only the running members once
    they are fewer than this fraction of the stepped batch (same results; None or 0:
    never). A failed solve does not raise: check ``sol.retcode``.
    """
    if not isinstance(problem, ODEProblem):
        raise ProblemError(f"problem must be a sciode Problem (e.g. sciode.ODEProblem); got {type(problem).__name__}")
    instance = resolve_solver(solver, solver_options, problem)
    sens = resolve_sensitivity(sensealg)
    if stepping not in STEPPING:
        raise ProblemError(f"stepping must be one of {STEPPING}; got {stepping!r}")
    max_steps = positive_int(max_steps, "max_steps")
    if not isinstance(progress, bool):
        raise ProblemError(f"progress must be True or False; got {progress!r}")
    if norm is not None and not callable(norm):
        raise ProblemError(f"norm must be callable or None; got {type(norm).__name__}")
    if controller is not None and not isinstance(controller, PIController):
        raise ProblemError(f"controller must be a sciode.PIController; got {type(controller).__name__}")
    use_adaptive = instance.adaptive if adaptive is None else bool(adaptive)
    if use_adaptive and not instance.adaptive:
        raise ProblemError(f"adaptive=True, but solver {instance.name!r} has no error estimate; "
                           "use a fixed dt or an adaptive solver")
    dt = positive_number(dt, "dt", allow_none=True)
    if not use_adaptive and dt is None:
        raise ProblemError(f"dt is required for fixed-step solving with {instance.name!r}: pass solve(..., dt=...)")
    max_step = positive_number(max_step, "max_step", allow_none=True)
    min_step = positive_number(min_step, "min_step", allow_none=True)
    if max_step is not None and min_step is not None and min_step > max_step:
        raise ProblemError(f"min_step ({min_step:g}) must not exceed max_step ({max_step:g})")
    rtol, atol = _tolerance(rtol, "rtol", problem), _tolerance(atol, "atol", problem)
    if use_adaptive:
        _warn_tiny_rtol(rtol, problem)
    if problem.u0.is_complex() and not getattr(instance, "supports_complex", False):
        raise ProblemError(f"solver {instance.name!r} does not integrate complex states (u0 is {problem.u0.dtype}); "
                           "use an explicit solver such as 'tsit5', or split u into real and imaginary parts")
    times = _saveat(saveat, problem)
    if not (isinstance(compile, bool) or compile in COMPILE_MODES):
        raise ProblemError(f"compile must be True, False or a torch.compile mode {COMPILE_MODES}; got {compile!r}")
    opts = LoopOptions(
        saveat=times, dt=dt, rtol=rtol, atol=atol, max_steps=max_steps,
        per_member=stepping == "per_member", dense=(saveat is None) if dense is None else bool(dense),
        progress=progress, norm=norm, controller=controller or PIController(*instance.pi_coefficients),
        adaptive=use_adaptive,
        events=check_events(events), max_step=max_step, min_step=min_step, tstops=_tstops(tstops, problem),
        compile=compile_mode(compile, problem.u0.device), compact=compaction_threshold(compact),
    )
    if getattr(instance, "owns_loop", False):
        if opts.compile is not None:
            warnings.warn(f"compile=True has no effect: solver {instance.name!r} brings its own integration loop",
                          CompileWarning, stacklevel=2)
        solution = instance.run(problem, opts, sens)
    elif sens is None:
        solution = integrate(problem, instance, opts)
    else:
        solution = sens.solve(problem, instance, opts)
    solution.sensealg = sens
    return solution

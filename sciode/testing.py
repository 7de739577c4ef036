"""Conformance helpers for solver and sensitivity authors (and sciode's own tests).

A plugin's test suite can call these on its solver by name or instance:

    from sciode import testing
    testing.assert_convergence_order("my_solver")
    testing.assert_batch_consistent("my_solver")
    testing.assert_dtype_preserved("my_solver")

Each returns what it measured so tests can report it.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .problems import ODEProblem, SecondOrderODEProblem
from .solve import solve

__all__ = [
    "ReferenceProblem",
    "linear_problem",
    "nonlinear_scalar_problem",
    "oscillator_problem",
    "convergence_slope",
    "assert_convergence_order",
    "assert_tolerance_proportionality",
    "assert_batch_consistent",
    "assert_dtype_preserved",
    "assert_gradients_agree",
]


@dataclasses.dataclass
class ReferenceProblem:
    """A problem with its exact solution ``exact(t) -> u(t)``."""

    problem: ODEProblem
    exact: Callable[[float], torch.Tensor]
    name: str


def linear_problem(dtype: torch.dtype = torch.float64) -> ReferenceProblem:
    """u' = A u with A = [[-1/2, 2], [-2, -1/2]], a damped rotation; exact solution in closed form.

    (torch.linalg.matrix_exp is only accurate to about 1e-11 in float64, too coarse
    for convergence tests of 5th-order methods.)
    """
    A = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=dtype)
    u0 = torch.tensor([1.0, 0.5], dtype=dtype)
    prob = ODEProblem(lambda u, p, t: u @ p.T, u0, (0.0, 2.0), A, name="linear")

    def exact(t: float) -> torch.Tensor:
        c, s = math.cos(2 * t), math.sin(2 * t)
        rotation = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
        return (math.exp(-0.5 * t) * rotation @ u0.to(torch.float64)).to(dtype)

    return ReferenceProblem(prob, exact, "linear")


def nonlinear_scalar_problem(dtype: torch.dtype = torch.float64) -> ReferenceProblem:
    """u' = u cos(t) (1 - u) ... a logistic equation with time-dependent rate; exact in closed form.

    With r(t) = sin(t), u(t) = 1 / (1 + (1/u0 - 1) exp(-sin t)).
    """
    u0 = torch.tensor([0.2], dtype=dtype)
    prob = ODEProblem(lambda u, p, t: torch.cos(t) * u * (1 - u), u0, (0.0, 3.0), name="logistic-cos")

    def exact(t: float) -> torch.Tensor:
        return 1.0 / (1.0 + (1.0 / u0 - 1.0) * math.exp(-math.sin(t)))

    return ReferenceProblem(prob, exact, "logistic-cos")


def oscillator_problem(dtype: torch.dtype = torch.float64) -> ReferenceProblem:
    """u'' = -omega^2 u as a SecondOrderODEProblem; state [v, u]."""
    w = 1.5
    prob = SecondOrderODEProblem(lambda v, u, p, t: -(w**2) * u, torch.tensor([0.0], dtype=dtype),
                                 torch.tensor([1.0], dtype=dtype), (0.0, 4.0), name="oscillator")

    def exact(t: float) -> torch.Tensor:
        return torch.tensor([-w * math.sin(w * t), math.cos(w * t)], dtype=dtype)

    return ReferenceProblem(prob, exact, "oscillator")


def _global_error(ref: ReferenceProblem, solver: Any, dt: float, **kwargs: Any) -> float:
    """Largest error over the step points of a fixed-step solve (more robust than the end point alone)."""
    sol = solve(ref.problem, solver, dt=dt, adaptive=False, **kwargs)
    exact = torch.stack([ref.exact(float(t)) for t in sol.t])
    return float((sol.u - exact.reshape(sol.u.shape)).abs().max())


def convergence_slope(ref: ReferenceProblem, solver: Any, dts: Sequence[float],
                      **kwargs: Any) -> tuple[float, list[float]]:
    """Least-squares slope of log(global error) against log(dt) at fixed steps, and the errors."""
    errors = [_global_error(ref, solver, dt, **kwargs) for dt in dts]
    x = torch.log(torch.tensor(dts, dtype=torch.float64))
    y = torch.log(torch.tensor(errors, dtype=torch.float64))
    xm, ym = x.mean(), y.mean()
    slope = float(((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum())
    return slope, errors


def _default_dts(order: int, span: float) -> list[float]:
    # keep the finest error well above float64 round-off for high orders
    coarse = {1: 1 / 50, 2: 1 / 25, 3: 1 / 12, 4: 1 / 8, 5: 1 / 20}.get(order, 1 / 20)
    return [span * coarse / 2**i for i in range(4)]


def assert_convergence_order(solver: Any, order: float | None = None, problem: ReferenceProblem | None = None,
                             dts: Sequence[float] | None = None, tol: float = 0.2, **kwargs: Any) -> float:
    """Check the error-vs-dt slope matches the solver's order within ``tol``; return the slope."""
    from .solve import resolve_solver

    ref = problem or (oscillator_problem() if _is_second_order(solver) else nonlinear_scalar_problem())
    instance = resolve_solver(solver, {}, ref.problem) if isinstance(solver, str) else solver
    expected = instance.order if order is None else order
    span = abs(ref.problem.tspan[1] - ref.problem.tspan[0])
    dts = list(dts) if dts is not None else _default_dts(int(expected), span)
    slope, errors = convergence_slope(ref, instance, dts, **kwargs)
    assert abs(slope - expected) <= tol, (
        f"{instance.name}: convergence slope {slope:.3f} on {ref.name}, expected order {expected} +- {tol}; "
        f"dts {dts}, errors {errors}")
    return slope


def _is_second_order(solver: Any) -> bool:
    from .registry import registry

    cls = registry.get("solver", solver, "solver") if isinstance(solver, str) else type(solver)
    return cls.problem_types == (SecondOrderODEProblem,)


def assert_tolerance_proportionality(solver: Any, problem: ReferenceProblem | None = None,
                                     rtols: Sequence[float] = (1e-4, 1e-6, 1e-8, 1e-10),
                                     slope_range: tuple[float, float] = (0.6, 1.4)) -> float:
    """Check an adaptive solver's error falls in proportion to rtol (log-log slope near 1)."""
    ref = problem or linear_problem()
    exact = ref.exact(ref.problem.tspan[1])
    errors = []
    for rtol in rtols:
        sol = solve(ref.problem, solver, rtol=rtol, atol=rtol * 1e-3)
        errors.append(float((sol.u[-1] - exact).abs().max()))
    x = torch.log(torch.tensor(rtols, dtype=torch.float64))
    y = torch.log(torch.tensor(errors, dtype=torch.float64))
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    assert slope_range[0] <= slope <= slope_range[1], f"{solver}: error-vs-rtol slope {slope:.3f}; errors {errors}"
    return slope


def _lotka_volterra(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x, y = u[..., 0], u[..., 1]
    a, b, c, d = p.unbind(-1)
    return torch.stack([a * x - b * x * y, -c * y + d * x * y], dim=-1)


def assert_batch_consistent(solver: Any, members: int = 64, dt: float | None = 0.01, rtol: float = 1e-8,
                            atol: float = 1e-10, exact: bool | None = None, **kwargs: Any) -> float:
    """Solving a (members, 2) Lotka-Volterra batch equals solving each member alone.

    Fixed-step solvers must agree to the bit (``exact``), adaptive ones (per-member
    stepping) within the tolerance. Returns the largest difference.
    """
    gen = torch.Generator().manual_seed(0)
    u0 = 0.5 + torch.rand(members, 2, generator=gen, dtype=torch.float64)
    p = (torch.tensor([1.5, 1.0, 3.0, 1.0], dtype=torch.float64)
         * (0.8 + 0.4 * torch.rand(members, 1, generator=gen, dtype=torch.float64)))
    times = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    prob = ODEProblem(_lotka_volterra, u0, (0.0, 2.0), p)
    batch = solve(prob, solver, dt=dt, rtol=rtol, atol=atol, saveat=times, **kwargs)
    diffs = []
    for i in range(members):
        single = solve(ODEProblem(_lotka_volterra, u0[i], (0.0, 2.0), p[i]), solver, dt=dt, rtol=rtol, atol=atol,
                       saveat=times, **{k: v for k, v in kwargs.items() if k != "stepping"})
        diffs.append(float((batch.u[:, i] - single.u).abs().max()))
    worst = max(diffs)
    is_exact = exact if exact is not None else (kwargs.get("adaptive") is False or not _adaptive(solver))
    limit = 0.0 if is_exact else 100 * rtol
    assert worst <= limit, f"{solver}: batch differs from single solves by {worst:.3g} (limit {limit:.3g})"
    return worst


def _adaptive(solver: Any) -> bool:
    from .registry import registry

    cls = registry.get("solver", solver, "solver") if isinstance(solver, str) else type(solver)
    return cls.adaptive


def assert_dtype_preserved(solver: Any, dt: float = 0.05, **kwargs: Any) -> None:
    """float32 in gives float32 out, float64 gives float64; t and u stay on u0's device."""
    for dtype in (torch.float32, torch.float64):
        ref = oscillator_problem(dtype) if _is_second_order(solver) else linear_problem(dtype)
        sol = solve(ref.problem, solver, dt=dt, **kwargs)
        assert sol.u.dtype == dtype and sol.t.dtype == dtype, (
            f"{solver}: {dtype} became u {sol.u.dtype}, t {sol.t.dtype}")
        assert sol.u.device == ref.problem.u0.device and sol.t.device == ref.problem.u0.device
        if sol.has_dense_output:
            assert sol(0.5 * sum(ref.problem.tspan)).dtype == dtype


def assert_gradients_agree(problem_factory: Callable[[], tuple[ODEProblem, list[torch.Tensor]]],
                           loss: Callable[[Any], torch.Tensor], sensealgs: Sequence[Any], solver: Any = "tsit5",
                           rtol: float = 1e-6, **solve_kwargs: Any) -> list[list[torch.Tensor]]:
    """Gradients of ``loss(solve(problem))`` under each sensitivity algorithm agree within ``rtol``.

    ``problem_factory`` returns a fresh problem and the tensors to differentiate.
    Returns the gradients per algorithm.
    """
    results = []
    for sens in sensealgs:
        prob, inputs = problem_factory()
        value = loss(solve(prob, solver, sensealg=sens, **solve_kwargs))
        grads = torch.autograd.grad(value, inputs, allow_unused=True)
        results.append([torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)])
    for sens, grads in zip(sensealgs[1:], results[1:]):
        for i, (a, b) in enumerate(zip(results[0], grads)):
            scale = max(float(a.abs().max()), 1e-12)
            err = float((a - b).abs().max()) / scale
            assert err <= rtol, f"gradient {i}: {sensealgs[0]} vs {sens} differ by {err:.3g} (relative), limit {rtol}"
    return results

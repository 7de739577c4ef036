"""Weak and strong accuracy: Ornstein-Uhlenbeck moments and strong orders on geometric Brownian motion."""
from __future__ import annotations

import math

import pytest
import torch
import torchsde

import sciode

THETA, MU, SIGMA, X0 = 1.0, 0.5, 0.5, 1.5


@pytest.mark.parametrize("solver, dt", [("euler_maruyama", 0.002), ("srk", 0.05)])
def test_ornstein_uhlenbeck_moments_at_t1(solver: str, dt: float) -> None:
    """Mean and variance at t = 1 over 10,000 paths lie within 3 standard errors of the exact values."""
    n = 10_000
    prob = sciode.SDEProblem(lambda u, p, t: THETA * (MU - u), lambda u, p, t: SIGMA * torch.ones_like(u),
                             torch.full((n, 1), X0, dtype=torch.float64), (0.0, 1.0), noise="additive")
    sol = sciode.solve(prob, solver, dt=dt, seed=11, saveat=[1.0])
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    x = sol.u[-1, :, 0]
    mean = MU + (X0 - MU) * math.exp(-THETA)
    var = SIGMA**2 / (2 * THETA) * (1 - math.exp(-2 * THETA))
    se_mean = math.sqrt(var / n)
    se_var = var * math.sqrt(2 / (n - 1))
    assert abs(float(x.mean()) - mean) < 3 * se_mean
    assert abs(float(x.var()) - var) < 3 * se_var


def _slope(dts: list[float], errors: list[float]) -> float:
    x, y = torch.log(torch.tensor(dts)), torch.log(torch.tensor(errors))
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


@pytest.mark.parametrize("solver, order", [("euler_maruyama", 0.5), ("milstein", 1.0)])
def test_strong_order_on_geometric_brownian_motion(solver: str, order: float) -> None:
    """Strong error at t = 1 against the exact GBM solution on one shared Brownian path; fitted slope within 0.15."""
    a, b, n = 1.0, 1.0, 500
    u0 = torch.ones(n, 1, dtype=torch.float64)
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(n, 1), dtype=torch.float64, entropy=7)
    exact = u0 * torch.exp(torch.tensor(a - b**2 / 2) + b * bm(0.0, 1.0))
    prob = sciode.SDEProblem(lambda u, p, t: a * u, lambda u, p, t: b * u, u0, (0.0, 1.0))
    dts = [2.0**-k for k in range(3, 9)]
    errors = []
    for dt in dts:
        sol = sciode.solve(prob, solver, dt=dt, brownian=bm, saveat=[1.0])
        errors.append(float((sol.u[-1] - exact).abs().mean()))
    assert abs(_slope(dts, errors) - order) < 0.15, (errors, _slope(dts, errors))


def test_stratonovich_solvers_converge_to_the_same_gbm_solution() -> None:
    """Every Stratonovich solver approaches the exact Stratonovich GBM solution u0 exp(a t + b W)."""
    a, b, n = 0.5, 0.8, 200
    u0 = torch.ones(n, 1, dtype=torch.float64)
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(n, 1), dtype=torch.float64, entropy=3,
                                   levy_area_approximation="foster")
    exact = u0 * torch.exp(a + b * bm(0.0, 1.0))
    prob = sciode.SDEProblem(lambda u, p, t: a * u, lambda u, p, t: b * u, u0, (0.0, 1.0), sde_type="stratonovich")
    for solver in ("milstein", "euler_heun", "sde_heun", "sde_midpoint", "reversible_heun", "log_ode"):
        coarse, fine = (float((sciode.solve(prob, solver, dt=dt, brownian=bm, saveat=[1.0]).u[-1] - exact)
                              .abs().mean()) for dt in (2.0**-3, 2.0**-6))
        assert fine < 0.2 * coarse and fine < 0.02, (solver, coarse, fine)

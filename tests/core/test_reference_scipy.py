"""tsit5 and dopri5 at rtol=1e-10 match scipy's DOP853 at rtol=1e-13 to 3e-8 relative, and are at least as
accurate as scipy's RK45 (the Dormand-Prince pair, with the integral controller) at the same tolerances.

The spiral decays towards the 1e-3 floor of the relative measure over 25 time units, so its global error
is some hundred times rtol for every controller: scipy's RK45 lands at 2.9e-8 there."""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import sciode


def lotka_volterra(u, p, t):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([1.5 * x - x * y, -3.0 * y + x * y], -1)


def spiral(u, p, t):
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=u.dtype)
    return (u**3) @ A.T


CASES = {
    "lotka_volterra": (lotka_volterra, [1.0, 1.0], (0.0, 10.0)),
    "spiral": (spiral, [2.0, 0.0], (0.0, 25.0)),
}


@pytest.mark.parametrize("solver", ["tsit5", "dopri5"])
@pytest.mark.parametrize("case", CASES)
def test_matches_dop853(case, solver):
    f, u0, tspan = CASES[case]
    times = np.linspace(*tspan, 21)
    ref = solve_ivp(lambda t, y: f(torch.tensor(y), None, torch.tensor(t)).numpy(), tspan, u0,
                    method="DOP853", rtol=1e-13, atol=1e-13, t_eval=times)
    prob = sciode.ODEProblem(f, torch.tensor(u0, dtype=torch.float64), tspan)
    sol = sciode.solve(prob, solver, rtol=1e-10, atol=1e-12, saveat=torch.tensor(times))
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    rel = lambda y: (np.abs(y - ref.y.T) / np.maximum(np.abs(ref.y.T), 1e-3)).max()  # noqa: E731
    scipy_rk45 = solve_ivp(lambda t, y: f(torch.tensor(y), None, torch.tensor(t)).numpy(), tspan, u0,
                           method="RK45", rtol=1e-10, atol=1e-12, t_eval=times)
    print(f"{case}/{solver}: max relative difference {rel(sol.u.numpy()):.2e} (scipy RK45 {rel(scipy_rk45.y.T):.2e}), "
          f"nfe {sol.stats['nfe']}")
    assert rel(sol.u.numpy()) < 3e-8
    assert rel(sol.u.numpy()) <= rel(scipy_rk45.y.T)
    # every-step output ends at t1 and agrees too
    full = sciode.solve(prob, solver, rtol=1e-10, atol=1e-12)
    assert float(full.t[-1]) == tspan[1]
    np.testing.assert_allclose(full.u[-1].numpy(), ref.y[:, -1], rtol=1e-8, atol=1e-10)

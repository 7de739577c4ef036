"""Mass matrices and index-1 DAEs: Robertson's DAE form, constraint accuracy, input checks."""
import pytest
import torch

import sciode
from sciode_implicit import stiff_problems

TIMES = torch.logspace(-5, 5, 41, dtype=torch.float64)


@pytest.mark.parametrize("solver", ["rodas4", "rodas5p", "bdf"])
def test_robertson_dae_constraint_holds_along_the_solution(solver):
    sol = sciode.solve(stiff_problems.robertson_dae((0.0, 1e3)), solver, rtol=1e-6, atol=1e-10)
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    assert float((sol.u.sum(-1) - 1).abs().max()) <= 1e-10
    assert float((sol(torch.linspace(0.0, 1e3, 2001, dtype=torch.float64)).sum(-1) - 1).abs().max()) <= 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["rodas4", "rodas5p", "bdf"])
def test_robertson_dae_constraint_holds_and_matches_the_ode(solver):
    dae = stiff_problems.robertson_dae((0.0, 1e5))
    saveat = torch.cat([torch.zeros(1, dtype=torch.float64), TIMES])
    sol = sciode.solve(dae, solver, rtol=1e-8, atol=1e-12, saveat=saveat, dense=True)
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    residual = float((sol.u.sum(-1) - 1).abs().max())
    ode = sciode.solve(stiff_problems.robertson((0.0, 1e5)), "rodas5p", rtol=1e-11, atol=1e-15, saveat=saveat)
    # relative differences from t = 0.01 on (before, y3 < 1e-8 is at round-off of 1 - y1 - y2 in the DAE form)
    rel = ((sol.u - ode.u).abs() / ode.u.abs())[1:][TIMES >= 1e-2]
    print(f"{solver}: max |y1 + y2 + y3 - 1| = {residual:.1e}, rel. difference to the ODE form "
          f"{float(rel[:, [0, 2]].max()):.1e} (y1, y3), {float(rel[:, 1].max()):.1e} (y2); stats {sol.stats}")
    assert residual <= 1e-10
    assert float(rel.max()) < 1e-4
    assert float((sol.u - ode.u).abs().max()) < 1e-7  # rtol 1e-8 on O(1) components
    between = sol(torch.logspace(-6, 5, 997, dtype=torch.float64))  # the dense output, along the whole solution
    assert float((between.sum(-1) - 1).abs().max()) <= 1e-10


def test_inconsistent_initial_condition_is_a_clear_error():
    dae = stiff_problems.robertson_dae((0.0, 1.0))
    bad = sciode.remake(dae, u0=torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64))
    for solver in ("rodas5p", "bdf"):
        with pytest.raises(sciode.ProblemError, match=r"inconsistent initial condition.*residual is 5\.000e-01"):
            sciode.solve(bad, solver)


@pytest.mark.parametrize("solver", ["tsit5", "dopri5", "implicit_euler", "trapezoid", "scipy_bdf"])
def test_solvers_without_mass_matrix_support_refuse(solver):
    dae = stiff_problems.robertson_dae((0.0, 1.0))
    with pytest.raises(sciode.ProblemError, match=f"solver '{solver}' cannot solve M du/dt = f with a mass_matrix"):
        sciode.solve(dae, solver)


def test_nonsingular_mass_matrix_equals_the_scaled_ode():
    """M u' = A u with M = diag(2, 4) is u' = M^-1 A u."""
    A = torch.tensor([[-3.0, 1.0], [1.0, -5.0]], dtype=torch.float64)
    M = torch.diag(torch.tensor([2.0, 4.0], dtype=torch.float64))
    u0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    exact = torch.linalg.matrix_exp(torch.linalg.solve(M, A)) @ u0
    for mass in (M, M.to_sparse()):
        prob = sciode.ODEProblem(lambda u, p, t: u @ A.T, u0, (0.0, 1.0), mass_matrix=mass,
                                 jac_prototype=torch.ones(2, 2, dtype=torch.bool))
        for solver, ls in (("rodas5p", "dense"), ("rodas5p", "sparse"), ("bdf", "banded"), ("bdf", "gmres")):
            sol = sciode.solve(prob, solver, linsolve=ls, rtol=1e-9, atol=1e-12, saveat=[0.0, 1.0])
            assert torch.allclose(sol.u[-1], exact, rtol=1e-6), (solver, ls)


def test_pendulum_index1_dae_batch():
    """A batch of linear index-1 DAEs x' = -x + y, 0 = y - c x: the constraint holds on every member."""
    c = torch.tensor([[0.5], [2.0]], dtype=torch.float64)

    def f(u, p, t):
        x, y = u.unbind(-1)
        return torch.stack([-x + y, y - p[..., 0] * x], -1)

    u0 = torch.cat([torch.ones(2, 1, dtype=torch.float64), c], -1)
    mass = torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64))
    prob = sciode.ODEProblem(f, u0, (0.0, 2.0), c, mass_matrix=mass)
    for stepping in ("shared", "per_member"):
        sol = sciode.solve(prob, "rodas5p", rtol=1e-8, atol=1e-10, stepping=stepping, saveat=10)
        assert float((sol.u[..., 1] - c[:, 0] * sol.u[..., 0]).abs().max()) <= 1e-10
        assert torch.allclose(sol.u[-1, :, 0], torch.exp((c[:, 0] - 1) * 2.0), rtol=1e-6)

"""The scipy bridge: same Problem, same Solution, forward only."""
import numpy as np
import pytest
import torch

import sciode
from sciode import ReturnCode
from sciode_implicit import stiff_problems

SOLVERS = ["scipy_lsoda", "scipy_bdf", "scipy_radau"]
TIMES = [0.0, 1.0, 100.0, 1e4]


def _ensemble():
    k = torch.tensor([[0.04, 3e7, 1e4], [0.044, 3e7, 1e4]], dtype=torch.float64)
    return stiff_problems.robertson((0.0, 1e4), k)


@pytest.mark.parametrize("name", SOLVERS)
def test_robertson_ensemble_matches_rodas4(name):
    sol = sciode.solve(_ensemble(), name, rtol=1e-8, atol=1e-12, saveat=TIMES, dense=True)
    ref = sciode.solve(_ensemble(), "rodas4", rtol=1e-10, atol=1e-14, saveat=TIMES)
    assert sol.retcode is ReturnCode.SUCCESS, sol.message
    assert sol.u.shape == (4, 2, 3) and sol.t.shape == (4,)
    rel = ((sol.u - ref.u).abs() / ref.u.abs().clamp_min(1e-12))[1:]
    print(f"{name}: max relative difference to rodas4 {float(rel.max()):.1e}; stats {sol.stats}")
    assert float(rel.max()) < 1e-4
    assert sol.stats["nfe"] > 0 and sol.stats["nsteps"] > 0
    assert "scipy" in sol.options["backend"]
    mid = sol(torch.tensor([50.0], dtype=torch.float64))  # dense output through scipy's interpolants
    assert mid.shape == (1, 2, 3) and torch.isfinite(mid).all()


def test_every_step_output_for_a_batch_uses_the_union_of_step_times():
    sol = sciode.solve(_ensemble(), "scipy_radau", rtol=1e-6, atol=1e-10)
    assert sol.retcode is ReturnCode.SUCCESS
    assert bool((sol.t[1:] > sol.t[:-1]).all()) and float(sol.t[-1]) == 1e4
    assert sol.u.shape == (sol.t.shape[0], 2, 3) and torch.isfinite(sol.u).all()
    assert torch.allclose(sol(sol.t[5]), sol.u[5])


def test_backwards_and_float32():
    prob = sciode.ODEProblem(lambda u, p, t: -u, torch.tensor([1.0], dtype=torch.float32), (1.0, 0.0))
    sol = sciode.solve(prob, "scipy_lsoda", rtol=1e-8, atol=1e-10)
    assert sol.u.dtype == torch.float32 and sol.t.dtype == torch.float32
    assert abs(float(sol.u[-1, 0]) - np.e) < 1e-6


def test_a_member_that_blows_up_gets_its_own_retcode():
    p = torch.tensor([[1.0], [50.0]], dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: p * u * u, torch.ones(2, 1, dtype=torch.float64), (0.0, 0.5), p)
    sol = sciode.solve(prob, "scipy_bdf", saveat=[0.0, 0.5])
    assert sol.member_retcode(0) is ReturnCode.SUCCESS
    assert sol.member_retcode(1) in (ReturnCode.DT_TOO_SMALL, ReturnCode.FAILURE, ReturnCode.UNSTABLE)
    assert abs(float(sol.u[-1, 0, 0]) - 2.0) < 1e-4
    assert torch.isnan(sol.u[-1, 1]).all()
    assert "member (1,)" in sol.message and "scipy BDF" in sol.message


@pytest.mark.parametrize("name", SOLVERS)
def test_gradients_are_refused_with_the_alternatives(name):
    prob = _ensemble()
    k = prob.p.clone().requires_grad_()
    with pytest.raises(sciode.NotDifferentiableError, match="rodas4"):
        sciode.solve(sciode.remake(prob, p=k), name)
    with pytest.raises(sciode.NotDifferentiableError, match="sensealg"):
        sciode.solve(prob, name, sensealg=_any_sensitivity())
    with torch.no_grad():  # no gradient wanted: fine
        assert sciode.solve(sciode.remake(prob, p=k), name, saveat=[0.0, 1.0]).retcode is ReturnCode.SUCCESS


def _any_sensitivity():
    class Dummy(sciode.Sensitivity):
        name = "dummy"

    return Dummy()


def test_options_are_validated():
    with pytest.raises(sciode.ProblemError, match="max_step"):
        sciode.solve(_ensemble(), "scipy_radau", max_step=-1.0)
    with pytest.raises(sciode.ProblemError, match="unknown argument"):
        sciode.solve(_ensemble(), "scipy_radau", newton_tol=0.1)


def test_structure_and_max_step_reach_solve_ivp(monkeypatch):
    """jac_prototype becomes jac_sparsity (BDF, Radau) or lband/uband (LSODA); max_step passes through."""
    from sciode_scipy import bridge

    seen = []
    real = bridge.solve_ivp

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(bridge, "solve_ivp", spy)
    prob = stiff_problems.brusselator_1d(30, tspan=(0.0, 1.0))
    for name in SOLVERS:
        sol = sciode.solve(prob, name, rtol=1e-6, atol=1e-8, saveat=[0.0, 1.0], max_step=0.25)
        assert sol.retcode is ReturnCode.SUCCESS, sol.message
    lsoda, bdf, radau = seen
    assert (lsoda["lband"], lsoda["uband"]) == (2, 2)
    for kw in (bdf, radau):
        assert kw["jac_sparsity"].shape == (60, 60) and kw["jac_sparsity"].nnz == 60 * 5 - 6
    assert all(kw["max_step"] == 0.25 for kw in seen)


def test_jac_sparsity_agrees_with_rodas5p():
    prob = stiff_problems.brusselator_1d(50)
    ref = sciode.solve(prob, "rodas5p", rtol=1e-9, atol=1e-9, saveat=[0.0, 10.0]).u[-1]
    for name in ("scipy_bdf", "scipy_radau"):
        sol = sciode.solve(prob, name, rtol=1e-8, atol=1e-8, saveat=[0.0, 10.0])
        assert float(((sol.u[-1] - ref).abs() / ref.abs()).max()) < 1e-5, name


def test_sparse_user_jacobian_reaches_scipy():
    n = 20
    A = (-2 * torch.eye(n) + torch.diag(torch.ones(n - 1), 1) + torch.diag(torch.ones(n - 1), -1)).double() * 100
    prob = sciode.ODEProblem(lambda u, p, t: u @ A.T, torch.ones(n, dtype=torch.float64), (0.0, 1.0),
                             jac=lambda u, p, t: A.to_sparse())
    sol = sciode.solve(prob, "scipy_radau", rtol=1e-8, atol=1e-10, saveat=[0.0, 1.0])
    exact = torch.linalg.matrix_exp(A) @ torch.ones(n, dtype=torch.float64)
    assert torch.allclose(sol.u[-1], exact, rtol=1e-5, atol=1e-8)

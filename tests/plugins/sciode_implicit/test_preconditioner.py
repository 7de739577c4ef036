"""GMRES preconditioners: the built-in incomplete LU (preconditioner="ilu") and a user callable."""
import pytest
import torch
from test_structure import _exact_jvp, _fd_check, _stiff_linear

import sciode
from sciode_implicit import stiff_problems


def _rel(a, b):
    return float(((a - b).abs() / b.abs()).max())


@pytest.mark.parametrize("solver", ["bdf", "rodas5p"])
def test_ilu_matches_sparse_and_cuts_krylov_iterations_on_the_brusselator(solver):
    prob = stiff_problems.brusselator_1d(50)
    kw = dict(rtol=1e-6, atol=1e-6, saveat=[0.0, 10.0])
    ref = sciode.solve(prob, solver, linsolve="sparse", **kw)
    plain = sciode.solve(prob, solver, linsolve="gmres", **kw)
    ilu = sciode.solve(prob, solver, linsolve="gmres", preconditioner="ilu", **kw)
    for sol in (ref, plain, ilu):
        assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    assert _rel(ilu.u[-1], ref.u[-1]) < 1e-5
    # unpreconditioned: 1829 (bdf) and 6181 (rodas5p) iterations; with the ILU about one per linear solve
    assert ilu.stats["nkrylov"] * 3 < plain.stats["nkrylov"]
    assert ilu.stats["nkrylov"] <= 1.2 * ilu.stats["nlinsolve"]


def test_ilu_on_a_small_2d_grid():
    prob = stiff_problems.brusselator_2d(10, tspan=(0.0, 2.0))
    kw = dict(rtol=1e-6, atol=1e-6, saveat=[0.0, 2.0])
    ref = sciode.solve(prob, "bdf", linsolve="sparse", **kw)
    plain = sciode.solve(prob, "bdf", linsolve="gmres", **kw)
    ilu = sciode.solve(prob, "bdf", linsolve="gmres", preconditioner="ilu", **kw)
    assert ilu.retcode is sciode.ReturnCode.SUCCESS and plain.retcode is sciode.ReturnCode.SUCCESS
    assert _rel(ilu.u[-1], ref.u[-1]) < 1e-4
    assert ilu.stats["nkrylov"] * 5 < plain.stats["nkrylov"]


def test_ilu_batched_members_match_single_solves():
    alpha = torch.tensor([0.01, 0.03], dtype=torch.float64)
    batch = stiff_problems.brusselator_1d(20, alpha)
    kw = dict(linsolve="gmres", preconditioner="ilu", rtol=1e-7, atol=1e-7, saveat=[0.0, 10.0])
    both = sciode.solve(batch, "bdf", stepping="per_member", **kw)
    assert both.retcode is sciode.ReturnCode.SUCCESS
    for i, a in enumerate(alpha):
        one = sciode.solve(stiff_problems.brusselator_1d(20, float(a)), "bdf", **kw)
        assert _rel(both.u[-1][i], one.u[-1]) < 1e-5


@pytest.mark.parametrize("solver", ["rodas5p", "implicit_euler", "bdf"])
def test_ilu_gradients_match_finite_differences(solver):
    f, u0, p, band = _stiff_linear(batch=(2,))

    def loss(c):
        prob = sciode.ODEProblem(f, u0, (0.0, 0.5), c, jac_prototype=band, jvp=_exact_jvp(f))
        sol = sciode.solve(prob, solver, linsolve="gmres", preconditioner="ilu", krylov_tol=1e-10, dt=0.05,
                           adaptive=False)
        return (sol.u[-1] ** 2).sum()

    ad, fd = _fd_check(loss, p)
    assert abs(ad - fd) <= 1e-6 * abs(fd), (ad, fd)


def test_user_preconditioner_is_called_and_used():
    f, u0, p, band = _stiff_linear(batch=())
    n = u0.shape[-1]
    i = torch.arange(n)
    A = -torch.diag(torch.logspace(0, 4, n, dtype=torch.float64)) + 0.5 * ((i[:, None] - i[None, :]).abs() == 1)
    built = []

    def exact(u, c, t, scale):  # P = W exactly: one Krylov iteration per solve
        built.append(1)
        inverse = torch.linalg.inv(torch.eye(n, dtype=u.dtype) - scale * c * A)
        return lambda r: r @ inverse.T

    prob = sciode.ODEProblem(f, u0, (0.0, 1.0), p)
    sol = sciode.solve(prob, "rodas5p", linsolve="gmres", preconditioner=exact, saveat=[0.0, 1.0])
    ref = sciode.solve(prob, "rodas5p", linsolve="dense", saveat=[0.0, 1.0])
    assert sol.retcode is sciode.ReturnCode.SUCCESS and built
    assert torch.allclose(sol.u[-1], ref.u[-1], rtol=1e-6, atol=1e-9)
    assert sol.stats["nkrylov"] <= sol.stats["nlinsolve"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(linsolve="gmres", preconditioner="jacobi-typo"), "preconditioner must be None, one of"),
    (dict(linsolve="sparse", preconditioner="ilu"), "applies to linsolve='gmres' only"),
    (dict(preconditioner="ilu"), "default linsolve is 'banded'"),
])
def test_preconditioner_bad_input(kwargs, match):
    f, u0, p, band = _stiff_linear(batch=())
    prob = sciode.ODEProblem(f, u0, (0.0, 1.0), p, jac_prototype=band)
    with pytest.raises(sciode.ProblemError, match=match):
        sciode.solve(prob, "bdf", **kwargs)


def test_ilu_needs_the_structure():
    f, u0, p, _ = _stiff_linear(batch=())
    with pytest.raises(sciode.ProblemError, match="preconditioner='ilu' needs the Jacobian's structure"):
        sciode.solve(sciode.ODEProblem(f, u0, (0.0, 1.0), p), "bdf", linsolve="gmres", preconditioner="ilu")

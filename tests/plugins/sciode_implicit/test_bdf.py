"""BDF: fixed-order convergence 1-5, adaptive order on stiff problems, reuse of work, gradients."""
import math

import pytest
import torch

import sciode
from sciode import RHS, testing
from sciode_implicit import stiff_problems
from sciode_implicit.bdf import BDF


def _fixed_order_error(order, h):
    """Global error at t = 1.5 of BDF(order) at constant step h, started from the exact history
    (the backward differences of the exact solution), so only the formula's own error shows."""
    ref = testing.nonlinear_scalar_problem()
    prob = ref.problem
    rhs = RHS(prob, 1e-10, 1e-10, lambda x: x.pow(2).mean().sqrt())
    solver = BDF(order=order)
    t = torch.tensor(0.0, dtype=torch.float64)
    state = solver.init(rhs, t, prob.u0, None)
    values = [ref.exact(-j * h) for j in range(order + 1)]  # y_0, y_-1, ..., y_-k
    diffs, level = [], values
    for _ in range(order + 1):
        diffs.append(level[0])
        level = [a - b for a, b in zip(level[:-1], level[1:])]
    D = state["D"].clone()
    D[..., : order + 1, :] = torch.stack(diffs, -2)
    state.update(D=D, h=torch.ones_like(t) * h)
    u = prob.u0
    steps = round(1.5 / h)
    for i in range(steps):
        res = solver.step(rhs, t, u, h, state)
        u, state, t = res.u, res.state, t + h
    return float((u - ref.exact(steps * h)).abs().max())


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_fixed_order_convergence(order):
    hs = [0.025, 0.0125, 0.00625] if order == 5 else [0.05, 0.025, 0.0125]  # order 5: slope 5.37, 5.23, 5.16 ...
    errs = [_fixed_order_error(order, h) for h in hs]
    slope = math.log(errs[0] / errs[-1]) / math.log(hs[0] / hs[-1])
    print(f"BDF order {order}: slope {slope:.3f}, errors {errs}")
    assert abs(slope - order) <= 0.2


@pytest.mark.slow
def test_adaptive_robertson_reuses_jacobians_and_matches_scipy():
    prob = stiff_problems.robertson((0.0, 1e5), analytic_jac=False)
    ref = sciode.solve(prob, "scipy_radau", rtol=1e-12, atol=1e-16, saveat=[0.0, 1e5]).u[-1]
    sol = sciode.solve(prob, "bdf", rtol=1e-8, atol=1e-14, saveat=[0.0, 1e5])
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    rel = float(((sol.u[-1] - ref).abs() / ref.abs()).max())
    print(f"bdf Robertson: rel. error {rel:.1e}, stats {sol.stats}")
    assert rel < 1e-4
    assert sol.stats["njac"] * 5 < sol.stats["nsteps"]


def test_dense_output_between_steps():
    ref = testing.nonlinear_scalar_problem()
    sol = sciode.solve(ref.problem, "bdf", rtol=1e-8, atol=1e-10)
    times = torch.linspace(0.01, 2.99, 97, dtype=torch.float64)
    exact = torch.stack([ref.exact(float(t)) for t in times])
    err = float((sol(times) - exact).abs().max())
    print(f"bdf dense output error {err:.1e} over {sol.stats['nsteps']} steps")
    assert err < 1e-6


@pytest.mark.parametrize("linsolve", ["dense", "banded", "sparse", "gmres"])
def test_bdf_every_linsolve_on_the_brusselator(linsolve):
    prob = stiff_problems.brusselator_1d(50)
    ref = sciode.solve(prob, "rodas5p", rtol=1e-9, atol=1e-9, saveat=[0.0, 10.0]).u[-1]
    sol = sciode.solve(prob, "bdf", linsolve=linsolve, rtol=1e-7, atol=1e-7, saveat=[0.0, 10.0])
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    rel = float(((sol.u[-1] - ref).abs() / ref.abs()).max())
    print(f"bdf {linsolve}: rel. error {rel:.1e}, stats {sol.stats}")
    assert rel < 1e-4


@pytest.mark.slow
def test_bdf_batch_per_member():
    k = torch.tensor([[0.04, 3e7, 1e4], [0.05, 3e7, 1e4], [0.03, 1e7, 1e4]], dtype=torch.float64)
    prob = stiff_problems.robertson((0.0, 1e3), k)
    shared = sciode.solve(prob, "bdf", rtol=1e-8, atol=1e-12, saveat=[0.0, 1e3])
    per = sciode.solve(prob, "bdf", rtol=1e-8, atol=1e-12, saveat=[0.0, 1e3], stepping="per_member")
    ref = sciode.solve(prob, "rodas5p", rtol=1e-10, atol=1e-14, saveat=[0.0, 1e3]).u[-1]
    for sol in (shared, per):
        assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
        assert float(((sol.u[-1] - ref).abs() / ref.abs()).max()) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("linsolve", ["dense", "sparse"])
def test_bdf_gradients_match_finite_differences(linsolve):
    n = 8
    i = torch.arange(n)
    A = -torch.diag(torch.logspace(0, 3, n, dtype=torch.float64)) + 0.3 * ((i[:, None] - i[None, :]).abs() == 1)

    def loss(c):
        prob = sciode.ODEProblem(lambda u, p, t: p * (u @ A.T) + torch.sin(u), torch.ones(n, dtype=torch.float64),
                                 (0.0, 1.0), c, jac_prototype=sciode.Banded(1, 1))
        return (sciode.solve(prob, "bdf", linsolve=linsolve, rtol=1e-8, atol=1e-10, saveat=[0.0, 1.0]).u[-1] ** 2).sum()

    p = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    g, = torch.autograd.grad(loss(p), p)
    with torch.no_grad():
        fd = (loss(p + 1e-6) - loss(p - 1e-6)) / 2e-6
    print(f"bdf {linsolve}: backprop {float(g):.10g}, FD {float(fd):.10g}")
    assert abs(float(g) - float(fd)) <= 1e-5 * abs(float(fd))


def test_bad_options():
    with pytest.raises(sciode.ProblemError, match="order"):
        sciode.solve(testing.nonlinear_scalar_problem().problem, "bdf", order=6)

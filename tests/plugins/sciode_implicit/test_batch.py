"""Batches: per-member stepping, batch consistency, dtypes, counters, Jacobians, LU reuse."""
import pytest
import torch

import sciode
from sciode import testing
from sciode_implicit import stiff_problems
from sciode_implicit.jacobian import jacobian

SOLVERS = ["implicit_euler", "trapezoid", "rodas4", "rodas4p"]


@pytest.mark.parametrize("name", SOLVERS)
def test_fixed_step_batch_equals_single_solves(name):
    """Not bitwise: batched LU/tensordot sum in a different order than single solves, and with a
    shared clock Newton's convergence test covers the whole batch (so it may iterate longer)."""
    worst = testing.assert_batch_consistent(name, members=6, dt=0.05, adaptive=False, exact=False)
    print(f"{name}: largest difference {worst:.1e}")


@pytest.mark.parametrize("name", ["rodas4", "rodas4p"])
def test_per_member_batch_matches_single_solves(name):
    testing.assert_batch_consistent(name, members=6, dt=None, rtol=1e-8, atol=1e-10, stepping="per_member")


@pytest.mark.parametrize("name", SOLVERS)
def test_dtype_preserved(name):
    testing.assert_dtype_preserved(name, rtol=1e-3, atol=1e-6)


def test_stiff_member_does_not_slow_the_others():
    """Per-member stepping: a Prothero-Robinson member with a fast transient (y0 far from sin 0)
    takes more steps than its smooth neighbour, which takes as few as when solved alone."""
    base = stiff_problems.prothero_robinson(1e6)
    u0 = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    batch = sciode.remake(base, u0=u0, p=base.p.expand(2, 1).clone())
    sol = sciode.solve(batch, "rodas4", stepping="per_member", rtol=1e-6, atol=1e-8)
    alone = sciode.solve(base, "rodas4", rtol=1e-6, atol=1e-8)
    steps = sol.member_stats["naccepted"]
    print("accepted steps per member", steps.tolist(), "smooth member alone", alone.stats["naccepted"])
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    assert int(steps[0]) == alone.stats["naccepted"] < int(steps[1])


def test_counters_and_lu_reuse_at_fixed_step():
    """At a fixed step on a linear problem the Jacobian (and LU) from the first step is reused."""
    sol = sciode.solve(testing.linear_problem().problem, "implicit_euler", dt=0.01, adaptive=False)
    assert sol.stats["nsteps"] == 200
    assert sol.stats["njac"] <= 2 and sol.stats["nlinsolve"] >= sol.stats["nsteps"]
    ros = sciode.solve(testing.linear_problem().problem, "rodas4", dt=0.1, adaptive=False)
    assert ros.stats["njac"] == ros.stats["nsteps"] and ros.stats["nlinsolve"] == 6 * ros.stats["nsteps"]


@pytest.mark.parametrize("per_member", [False, True])
def test_autodiff_jacobian_matches_analytic(per_member):
    prob = stiff_problems.robertson(members=3)
    u = torch.tensor([[0.9, 1e-5, 0.1], [0.5, 2e-5, 0.5], [0.2, 3e-5, 0.8]], dtype=torch.float64)
    t = torch.zeros(3, 1, dtype=torch.float64) if per_member else torch.tensor(0.0, dtype=torch.float64)
    rhs = sciode.RHS(sciode.remake(prob, jac=None), 1e-6, 1e-9, lambda x: x)
    J, ft = jacobian(rhs, t, u, with_time=True)
    assert torch.allclose(J, prob.jac(u, prob.p, t), rtol=1e-14, atol=0)
    assert ft is None or bool((ft == 0).all())  # autonomous
    assert rhs.njac == 1


def test_time_derivative_of_non_autonomous_f():
    prob = stiff_problems.prothero_robinson(10.0)
    u = torch.tensor([0.3], dtype=torch.float64)
    t = torch.tensor(0.7, dtype=torch.float64)
    for problem in (prob, sciode.remake(prob, jac=None)):
        rhs = sciode.RHS(problem, 1e-6, 1e-9, lambda x: x)
        J, ft = jacobian(rhs, t, u, with_time=True)
        assert torch.allclose(J, torch.tensor([[-10.0]], dtype=torch.float64))
        expected = 10.0 * torch.cos(t) - torch.sin(t)
        assert torch.allclose(ft, expected.reshape(1))

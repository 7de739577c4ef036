"""Failure paths: a member that blows up, a singular Newton matrix, a non-finite Jacobian and a
Newton iteration that does not converge each end in a retcode with a message, never a hang or
an exception; malformed Jacobians are bad input and raise ProblemError at once."""
import pytest
import torch

import sciode
from sciode import ReturnCode

pytestmark = pytest.mark.timeout(120)
F64 = torch.float64


def _blow_up(p):
    """u' = p u^2, u(0) = 1: u = 1 / (1 - p t), which blows up at t = 1/p."""
    return sciode.ODEProblem(lambda u, p, t: p * u * u, torch.ones(len(p), 1, dtype=F64), (0.0, 0.5),
                             torch.tensor(p, dtype=F64).reshape(-1, 1), jac=lambda u, p, t: (2 * p * u).unsqueeze(-1))


@pytest.mark.parametrize("solver", ["rodas4", "trapezoid", pytest.param("implicit_euler", marks=pytest.mark.slow)])
def test_member_that_blows_up_fails_alone(solver):
    # near a blow-up the steps shrink geometrically, by about rtol**(1/(order+1)) each: a loose
    # rtol reaches the end of the clock's resolution in hundreds rather than tens of thousands of steps
    rtol = 1e-3 if solver == "implicit_euler" else 1e-4
    sol = sciode.solve(_blow_up([1.0, 0.5, 50.0]), solver, stepping="per_member", rtol=rtol, atol=1e-8)
    codes = [ReturnCode(int(c)) for c in sol.retcodes]
    print(solver, codes, sol.message)
    assert codes[:2] == [ReturnCode.SUCCESS, ReturnCode.SUCCESS]
    assert codes[2] in (ReturnCode.UNSTABLE, ReturnCode.DT_TOO_SMALL)
    exact = torch.tensor([[1 / (1 - 0.5)], [1 / (1 - 0.25)]], dtype=F64)
    assert torch.allclose(sol.u[-1, :2], exact, rtol=100 * rtol)
    assert "member (2,)" in sol.message


def _linear(rate, jac=None):
    return sciode.ODEProblem(lambda u, p, t: rate * u, torch.tensor([1.0, 2.0], dtype=F64), (0.0, 2.0), jac=jac)


def test_singular_newton_matrix_at_fixed_step():
    """u' = 2u with dt = 0.5: implicit Euler's I - h J is exactly zero (the step has no solution)."""
    sol = sciode.solve(_linear(2.0), "implicit_euler", dt=0.5, adaptive=False)
    assert sol.retcode is ReturnCode.FAILURE
    assert "singular" in sol.message and "t = 0" in sol.message
    # adaptively the step shrinks away from the singularity and the solve succeeds
    ok = sciode.solve(_linear(2.0), "implicit_euler", rtol=1e-3, atol=1e-6)
    assert ok.retcode is ReturnCode.SUCCESS


def test_singular_jacobian_is_fine():
    """A rank-deficient df/du does not make I - h*gamma*J singular."""
    f = lambda u, p, t: torch.stack([u[..., 1], torch.zeros_like(u[..., 0])], -1)  # noqa: E731
    prob = sciode.ODEProblem(f, torch.tensor([0.0, 1.0], dtype=F64), (0.0, 1.0))
    for solver in ("implicit_euler", "trapezoid", "rodas4"):
        sol = sciode.solve(prob, solver)
        assert sol.retcode is ReturnCode.SUCCESS
        assert torch.allclose(sol.u[-1], torch.tensor([1.0, 1.0], dtype=F64), atol=1e-6)


def _nan_jac(u, p, t):
    return torch.full(u.shape + (u.shape[-1],), float("nan"), dtype=u.dtype)


@pytest.mark.parametrize("solver", ["implicit_euler", "trapezoid", "rodas4"])
def test_non_finite_jacobian(solver):
    fixed = sciode.solve(_linear(-1.0, jac=_nan_jac), solver, dt=0.1, adaptive=False)
    assert fixed.retcode is ReturnCode.FAILURE
    assert "non-finite" in fixed.message
    adaptive = sciode.solve(_linear(-1.0, jac=_nan_jac), solver)
    assert adaptive.retcode is ReturnCode.DT_TOO_SMALL
    assert "non-finite" in adaptive.message
    print(adaptive.message)


def test_newton_that_does_not_converge():
    """A Jacobian with the wrong sign makes the simplified Newton iteration diverge."""
    wrong = lambda u, p, t: torch.diag_embed(torch.full_like(u, 50.0))  # noqa: E731  (true df/du = -50 I)
    sol = sciode.solve(_linear(-50.0, jac=wrong), "implicit_euler", dt=0.2, adaptive=False)
    assert sol.retcode is ReturnCode.FAILURE
    assert "Newton" in sol.message
    print(sol.message)
    few = sciode.solve(_linear(-50.0), "trapezoid", dt=0.2, adaptive=False, max_iters=1, newton_tol=1e-12)
    assert few.retcode is ReturnCode.FAILURE and "did not converge in 1 iterations" in few.message


def test_malformed_jacobian_raises_problem_error():
    bad_shape = lambda u, p, t: torch.zeros(u.shape[-1], dtype=u.dtype)  # noqa: E731
    with pytest.raises(sciode.ProblemError, match="jac"):
        sciode.solve(_linear(-1.0, jac=bad_shape), "rodas4")
    with pytest.raises(sciode.ProblemError, match="max_iters"):
        sciode.solve(_linear(-1.0), "implicit_euler", max_iters=0)


def test_core_loop_appends_the_solvers_failure_note():
    """Core change (sciode/loop/outcome.py): a failed solve's message ends with the solver's ``failure_note``."""

    class Flaky(sciode.Solver):
        name = "flaky_test_solver"
        order, error_order, adaptive = 1, 1, True

        def init(self, rhs, t0, u0, f0):
            self.failure_note = ""
            return None

        def step(self, rhs, t, u, dt, state):
            self.failure_note = "could not do it"
            return sciode.StepResult(u, torch.full_like(u, float("inf")), None, None)

    prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(1, dtype=F64), (0.0, 1.0))
    sol = sciode.solve(prob, Flaky(), dt=0.1, adaptive=False)
    assert sol.retcode is ReturnCode.FAILURE and sol.message.endswith("solver: could not do it")
    ok = sciode.solve(prob, "rodas4")
    assert "solver:" not in ok.message

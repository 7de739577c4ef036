"""RODAS5P: classical order 5, order-4 dense output, Prothero-Robinson, and cheap rejections.

Measured (printed with -s): classical slope 5.2 on the nonlinear scalar problem; dense output
slope 5.2 between steps; on Prothero-Robinson with lambda = 1e6 slope 3.0 at steps 0.4 .. 0.025
with errors below 5e-10 (rodas4 drops to about 1.1 there).

Why order 3 and not 5: in the stiff limit (h lambda -> infinity) a stiffly accurate Rosenbrock
method applied to y' = -lambda (y - phi) + phi' reproduces phi exactly when phi is a polynomial
of low degree, and leaves an error of size h^k / (h lambda) for the first degree k it misses;
that error is the global error (R(inf) = 0 damps what came before), so the stiff order is k - 1.
`test_stiff_limit_polynomial_degree` measures k: RODAS4 misses degree 2 (stiff order 1),
RODAS4P and RODAS5P both reproduce degrees 0-3 and miss degree 4 (stiff order 3). The
coefficients are those of the published method (row sums of Gamma equal d, of alpha equal c,
checked in `test_tableau_is_consistent`), so order 3 on Prothero-Robinson is a property of
RODAS5P itself, not of this implementation.
"""
import math

import numpy as np
import pytest
import torch

import sciode
from sciode import testing
from sciode_implicit import stiff_problems
from sciode_implicit.coefficients import RODAS4, RODAS4P, RODAS5P


def test_classical_order_five():
    slope = testing.assert_convergence_order("rodas5p", 5, dts=[0.2, 0.1, 0.05, 0.025], tol=0.2)
    print(f"rodas5p: slope {slope:.3f}")


def test_dense_output_order_four():
    ref = testing.nonlinear_scalar_problem()
    dts, errs = [0.2, 0.1, 0.05, 0.025], []
    for dt in dts:
        sol = sciode.solve(ref.problem, "rodas5p", dt=dt, adaptive=False)
        times = torch.tensor([0.37 * dt + k * dt for k in range(int(2.0 / dt))], dtype=torch.float64)
        errs.append(float((sol(times) - torch.stack([ref.exact(float(t)) for t in times])).abs().max()))
    slope = math.log(errs[0] / errs[-1]) / math.log(dts[0] / dts[-1])
    print(f"rodas5p dense-output slope {slope:.2f}, errors {errs}")
    assert slope >= 4 - 0.2


def test_prothero_robinson_stiff_order():
    ref = testing.ReferenceProblem(stiff_problems.prothero_robinson(1e6), stiff_problems.exact_prothero_robinson, "PR")
    slope, errors = testing.convergence_slope(ref, "rodas5p", [0.4, 0.2, 0.1, 0.05, 0.025])
    _, errors4 = testing.convergence_slope(ref, "rodas4", [0.4, 0.2, 0.1, 0.05, 0.025])
    print(f"rodas5p: Prothero-Robinson slope {slope:.3f}, errors {errors}; rodas4 errors {errors4}")
    assert abs(slope - 3.0) <= 0.2 and max(errors) < 1e-9
    assert errors[-1] < errors4[-1] / 100


def _stiff_limit_error(name: str, degree: int, h: float, lam: float = 1e8) -> float:
    """One step of y' = -lam (y - phi) + phi' from y(0) = phi(0), phi = (1 + t)^degree; error times lam."""
    prob = sciode.ODEProblem(lambda u, p, t: -lam * (u - (1 + t) ** degree) + degree * (1 + t) ** max(degree - 1, 0),
                             torch.tensor([1.0], dtype=torch.float64), (0.0, h))
    sol = sciode.solve(prob, name, dt=h, adaptive=False)
    return abs(float(sol.u[-1][0]) - (1 + h) ** degree) * lam


@pytest.mark.parametrize("name,first_missed", [("rodas4", 2), ("rodas4p", 4), ("rodas5p", 4)])
def test_stiff_limit_polynomial_degree(name, first_missed):
    """Degrees below ``first_missed`` are exact up to round-off (error * lambda ~ 1e-8 from
    float64 at lambda = 1e8); the first missed degree leaves error * lambda = O(h^(k-1)), not small."""
    scaled = [_stiff_limit_error(name, k, 0.5) for k in range(first_missed + 1)]
    print(f"{name}: error * lambda by degree {['%.1e' % e for e in scaled]}")
    assert max(scaled[:first_missed]) < 1e-6
    assert scaled[first_missed] > 1e-4


@pytest.mark.parametrize("tableau", [RODAS4, RODAS4P, RODAS5P], ids=["rodas4", "rodas4p", "rodas5p"])
def test_tableau_is_consistent(tableau):
    """Back in the untransformed form (Gamma = (I/gamma - C)^-1, alpha = A Gamma) the row sums of
    Gamma are the time-derivative weights d and those of alpha the stage times c."""
    s = tableau.stages
    a, c = np.zeros((s, s)), np.zeros((s, s))
    for i in range(s):
        a[i, :i], c[i, :i] = tableau.a[i], tableau.C[i] if i < len(tableau.C) else ()
    gamma_matrix = np.linalg.inv(np.eye(s) / tableau.gamma - c)
    np.testing.assert_allclose(gamma_matrix.sum(axis=1), tableau.d, atol=1e-12)
    np.testing.assert_allclose((a @ gamma_matrix).sum(axis=1), tableau.c, atol=1e-12)


@pytest.mark.parametrize("name", ["rodas4", "rodas5p"])
def test_rejected_step_reuses_the_jacobian(name):
    """A rejected step retries from the same (t, u): njac counts step starts, not attempts."""
    prob = stiff_problems.van_der_pol(mu=1000.0, tspan=(0.0, 100.0))
    sol = sciode.solve(prob, name, rtol=1e-6, atol=1e-6, dt=10.0)  # a far too large first step: rejections
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    assert sol.stats["nrejected"] > 0
    assert sol.stats["njac"] == sol.stats["naccepted"]


def test_rejection_reuse_per_member():
    prob = stiff_problems.robertson((0.0, 1e3), members=4)
    sol = sciode.solve(prob, "rodas5p", rtol=1e-6, atol=1e-10, dt=100.0, stepping="per_member")
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    assert sol.stats["njac"] < sol.stats["nsteps"]

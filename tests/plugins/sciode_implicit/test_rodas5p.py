"""RODAS5P: classical order 5, order-4 dense output, Prothero-Robinson, and cheap rejections.

Measured (printed with -s): classical slope 5.2 on the nonlinear scalar problem; dense output
slope 5.2 between steps; on Prothero-Robinson with lambda = 1e6 slope 3.0 at steps 0.4 .. 0.025
with errors below 5e-10 (rodas4 drops to about 1.1 there).
"""
import math

import pytest
import torch

import sciode
from sciode import testing
from sciode_implicit import stiff_problems


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

"""Convergence orders: classical (non-stiff) and on Prothero-Robinson with lambda = 1e6.

Prothero-Robinson, y' = -lambda (y - sin t) + cos t, is solved at steps 0.2 ... 0.025,
five orders of magnitude above 1/lambda. Measured slopes (printed with -s): implicit Euler
1.0, trapezoid 2.0, RODAS4P 3.0 (its stiff order on this problem), RODAS4 about 1.1:
RODAS4 suffers the order reduction RODAS4P was designed to avoid, although its errors stay
tiny (below 1e-8) because the stiff error terms carry a factor 1/lambda.
"""
import math

import pytest
import torch

import sciode
from sciode import testing
from sciode_implicit import stiff_problems

ORDERS = {"implicit_euler": 1, "trapezoid": 2, "rodas4": 4, "rodas4p": 4}
PR_DTS = [0.2, 0.1, 0.05, 0.025]


def _prothero_robinson():
    return testing.ReferenceProblem(stiff_problems.prothero_robinson(1e6), stiff_problems.exact_prothero_robinson, "PR")


@pytest.mark.parametrize("name", ORDERS)
def test_classical_order_on_nonlinear_scalar(name):
    dts = {1: [0.02, 0.01, 0.005, 0.0025], 2: [0.1, 0.05, 0.025, 0.0125], 4: [0.1, 0.05, 0.025, 0.0125]}[ORDERS[name]]
    slope = testing.assert_convergence_order(name, ORDERS[name], dts=dts, tol=0.25)
    print(f"{name}: slope {slope:.3f}")


@pytest.mark.parametrize("name", ORDERS)
def test_classical_order_on_linear_system(name):
    dts = {1: [0.01, 0.005, 0.0025, 0.00125], 2: [0.1, 0.05, 0.025, 0.0125], 4: [0.2, 0.1, 0.05, 0.025]}[ORDERS[name]]
    testing.assert_convergence_order(name, ORDERS[name], problem=testing.linear_problem(), dts=dts, tol=0.25)


@pytest.mark.parametrize("name,order,tol", [("implicit_euler", 1, 0.15), ("trapezoid", 2, 0.15), ("rodas4p", 3, 0.25)])
def test_stiff_order_on_prothero_robinson(name, order, tol):
    slope, errors = testing.convergence_slope(_prothero_robinson(), name, PR_DTS)
    print(f"{name}: Prothero-Robinson slope {slope:.3f}, errors {errors}")
    assert abs(slope - order) <= tol


def test_rodas4_order_reduction_on_prothero_robinson_is_bounded():
    slope, errors = testing.convergence_slope(_prothero_robinson(), "rodas4", PR_DTS)
    print(f"rodas4: Prothero-Robinson slope {slope:.3f}, errors {errors}")
    assert slope > 0.8 and max(errors) < 1e-8


@pytest.mark.parametrize("name", ["implicit_euler", "trapezoid", "rodas4", "rodas4p"])
def test_adaptive_on_prothero_robinson(name):
    """Adaptive runs reach the tolerance with few steps although h*lambda is huge."""
    ref = _prothero_robinson()
    for rtol in (1e-4, 1e-6):
        sol = sciode.solve(ref.problem, name, rtol=rtol, atol=rtol)
        err = float((sol.u[-1] - math.sin(2.0)).abs())
        print(f"{name} rtol {rtol:g}: {sol.stats['nsteps']} steps, error {err:.2e}")
        assert sol.retcode is sciode.ReturnCode.SUCCESS
        assert err < 10 * rtol
        assert sol.stats["nsteps"] < 200


@pytest.mark.parametrize("name", ["trapezoid", "rodas4", "rodas4p"])
def test_error_falls_with_rtol(name):
    rtols = (1e-4, 1e-5, 1e-6, 1e-7) if name == "trapezoid" else (1e-4, 1e-6, 1e-8, 1e-10)
    slope = testing.assert_tolerance_proportionality(name, rtols=rtols, slope_range=(0.5, 1.5))
    print(f"{name}: error-vs-rtol slope {slope:.3f}")


@pytest.mark.parametrize("name,order", [("rodas4", 3), ("rodas4p", 3), ("trapezoid", 2)])
def test_dense_output_order(name, order):
    """Between steps the interpolant's error falls at least at its own order."""
    ref = testing.nonlinear_scalar_problem()
    dts, errs = [0.2, 0.1, 0.05, 0.025], []
    for dt in dts:
        sol = sciode.solve(ref.problem, name, dt=dt, adaptive=False)
        times = torch.tensor([0.37 * dt + k * dt for k in range(int(2.0 / dt))], dtype=torch.float64)
        errs.append(float((sol(times) - torch.stack([ref.exact(float(t)) for t in times])).abs().max()))
    slope = math.log(errs[0] / errs[-1]) / math.log(dts[0] / dts[-1])
    print(f"{name}: dense-output slope {slope:.2f}, errors {errs}")
    assert slope >= order - 0.2

"""Convergence order of every explicit solver: the log-log slope of error vs dt."""
import pytest

from sciode import testing

FIXED_ORDER = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "nystrom2": 2, "bosh3": 3, "dopri5": 5, "tsit5": 5}


# Tsitouras chose tsit5's coefficients to make the 5th-order error constant small, so
# the 6th-order term dominates until the error nears float64 round-off: on this
# problem its measured slope is about 5.3 at every dt above round-off.
PRE_ASYMPTOTIC_TOL = {"tsit5": 0.35}


@pytest.mark.parametrize("name", FIXED_ORDER)
def test_order_on_nonlinear_scalar(name):
    slope = testing.assert_convergence_order(name, FIXED_ORDER[name], tol=PRE_ASYMPTOTIC_TOL.get(name, 0.2))
    print(f"{name}: slope {slope:.3f}")


@pytest.mark.parametrize("name", ["euler", "heun", "rk4", "bosh3", "tsit5", "dopri5", "nystrom2"])
def test_order_on_linear_system(name):
    testing.assert_convergence_order(name, FIXED_ORDER[name], problem=testing.linear_problem())


@pytest.mark.parametrize("name,order", [("verlet", 2), ("rkn4", 4), ("rk4", 4)])
def test_second_order_solvers(name, order):
    testing.assert_convergence_order(name, order, problem=testing.oscillator_problem())


@pytest.mark.parametrize("name", ["bosh3", "dopri5", "tsit5"])
def test_error_falls_with_rtol(name):
    slope = testing.assert_tolerance_proportionality(name)
    print(f"{name}: error-vs-rtol slope {slope:.3f}")


@pytest.mark.parametrize("name,order", [("rk4", 3), ("dopri5", 4), ("tsit5", 4), ("bosh3", 3), ("midpoint", 2)])
def test_dense_output_order(name, order):
    """The interpolant's error between steps shrinks at (at least) its own order + 1 locally."""
    import math

    import torch

    ref = testing.nonlinear_scalar_problem()
    errs, dts = [], [0.2, 0.1, 0.05, 0.025]
    for dt in dts:
        sol = sciode_solve(ref.problem, name, dt)
        times = torch.tensor([0.3 * dt + k * dt for k in range(int(2.0 / dt))], dtype=torch.float64)
        errs.append(max(float((sol(t) - ref.exact(float(t))).abs().max()) for t in times))
    slope = math.log(errs[0] / errs[-1]) / math.log(dts[0] / dts[-1])
    assert slope >= order - 0.2, (name, slope, errs)


def sciode_solve(problem, name, dt):
    import sciode

    return sciode.solve(problem, name, dt=dt, adaptive=False)

"""Robertson, van der Pol (mu = 1000) and HIRES against scipy Radau at rtol = 1e-12.

The reference values below were computed with scipy.integrate.solve_ivp(method="Radau",
rtol=1e-12, atol=1e-16 (Robertson) / 1e-14 (others), analytic Jacobians where the problem
has one); the slow test ``test_stored_references_match_scipy_radau`` recomputes them.
Each fast test prints its step counts next to scipy's Radau and BDF at the same tolerance.
"""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import sciode
from sciode_implicit import stiff_problems

REFERENCES = {
    "robertson": ([1e-3, 1.0, 1e2, 1e4, 1e5], 1e-16, [
        [0.9999600015632172, 2.9169034944874388e-05, 1.0829401837971818e-05],
        [0.9664597373330075, 3.07462657857873e-05, 0.03350951640120578],
        [0.617234882396064, 6.1535912746379905e-06, 0.3827589640126594],
        [0.10730042853793664, 4.800166972578538e-07, 0.8926990914453666],
        [0.017865921142322466, 7.274751468528743e-08, 0.9821340061101639]]),
    "hires": ([1.0, 10.0, 321.8122], 1e-14, [
        [0.2554926929715573, 0.0569087890865337, 0.019458074977094078, 0.45851946967110535, 0.020147739125070573,
         0.18228795775952647, 0.0054990812724202654, 0.0002009187275797488],
        [0.008324735469237976, 0.0016526725080015852, 0.0014103426593080354, 0.017433224297456713,
         0.18572046406524076, 0.7494166221553432, 0.0056512533418251205, 4.874665817489412e-05],
        [0.0007371312573325096, 0.00014424857263160718, 5.888729740966519e-05, 0.0011756513432830402,
         0.0023863561988296685, 0.006238968252737683, 0.0028499983951845555, 0.002850001604815461]]),
    "vdp": ([1.0, 1000.0, 3000.0], 1e-14, [
        [1.9993333705063105, -0.0006670371231732617], [-1.8636462548079982, 0.0007535430865431596],
        [-1.5106069367441906, 0.0011783800007307654]]),
}
PROBLEMS = {"robertson": stiff_problems.robertson, "hires": stiff_problems.hires, "vdp": stiff_problems.van_der_pol}


def _numpy(prob):
    f = lambda t, y: prob.f(torch.tensor(y), prob.p, torch.tensor(t)).numpy()  # noqa: E731
    jac = None if prob.jac is None else (lambda t, y: prob.jac(torch.tensor(y), prob.p, torch.tensor(t)).numpy())
    return f, ({} if jac is None else {"jac": jac})


def _scipy_steps(prob, rtol, atol):
    f, kw = _numpy(prob)
    return {m: solve_ivp(f, prob.tspan, prob.u0.numpy(), method=m, rtol=rtol, atol=atol, **kw).t.size - 1
            for m in ("Radau", "BDF")}


def _check(name, solver, rtol, atol, limit, limits_by_state=None):
    times, _, ref = REFERENCES[name]
    prob = PROBLEMS[name]()
    sol = sciode.solve(prob, solver, rtol=rtol, atol=atol, saveat=times)
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    ref = np.array(ref)
    rel = np.abs(sol.u.numpy() - ref) / np.abs(ref)
    steps = _scipy_steps(prob, rtol, atol)
    print(f"{name} rtol {rtol:g}: {solver} {sol.stats['nsteps']} steps ({sol.stats['nrejected']} rejected), "
          f"scipy Radau {steps['Radau']}, BDF {steps['BDF']}; worst relative error per state {rel.max(0)}")
    bound = np.full(ref.shape[1], limit) if limits_by_state is None else np.array(limits_by_state)
    assert (rel.max(0) <= bound).all()
    return sol


@pytest.mark.parametrize("solver", ["rodas4", "rodas4p"])
def test_robertson(solver):
    """rtol 1e-6: every component within 1e-4 relative of the reference, y2 within 1e-3."""
    _check("robertson", solver, 1e-6, 1e-10, None, limits_by_state=[1e-4, 1e-3, 1e-4])


def test_robertson_trapezoid():
    _check("robertson", "trapezoid", 1e-6, 1e-10, None, limits_by_state=[1e-3, 1e-2, 1e-3])


@pytest.mark.parametrize("solver", ["rodas4p"])
def test_hires(solver):
    _check("hires", solver, 1e-6, 1e-10, 1e-4)


@pytest.mark.parametrize("solver", ["rodas4", pytest.param("rodas4p", marks=pytest.mark.slow)])
def test_van_der_pol_mu_1000(solver):
    _check("vdp", solver, 1e-6, 1e-10, 1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCES)
def test_stored_references_match_scipy_radau(name):
    times, atol, ref = REFERENCES[name]
    prob = PROBLEMS[name]()
    f, kw = _numpy(prob)
    res = solve_ivp(f, prob.tspan, prob.u0.numpy(), method="Radau", rtol=1e-12, atol=atol, t_eval=times, **kw)
    np.testing.assert_allclose(res.y.T, np.array(ref), rtol=1e-9)

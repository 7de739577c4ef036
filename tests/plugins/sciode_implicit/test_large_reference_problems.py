"""rodas5p and bdf on the Hairer-Wanner reference problems, to 1e-4 relative of scipy Radau at rtol 1e-12.

Robertson (ODE and DAE forms), HIRES and van der Pol (mu = 1000) use the stored Radau values of
``test_reference_problems.py``; POLLU uses the test set's published reference at t = 60 (itself
checked against scipy Radau at rtol 1e-12 in a slow test); the 1-D Brusselator at N = 500 is
compared against a fresh Radau solve (slow).
"""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from test_reference_problems import PROBLEMS, REFERENCES

import sciode
from sciode_implicit import stiff_problems

# The Test Set for IVP Solvers (Bari), POLLU at t = 60: RADAU5 in extended precision.
POLLU_REFERENCE = [
    0.5646255480022769e-01, 0.1342484130422339e+00, 0.4139734331099427e-08, 0.5523140207484359e-02,
    0.2018977262302196e-06, 0.1464541863493966e-06, 0.7784249118997964e-01, 0.3245075353396018e+00,
    0.7494013383880406e-02, 0.1622293157301561e-07, 0.1135863833257075e-07, 0.2230505975721359e-02,
    0.2087162882798630e-03, 0.1396921016840158e-04, 0.8964884856898295e-02, 0.4352846369330103e-17,
    0.6899219696263405e-02, 0.1007803037365946e-03, 0.1772146513969984e-05, 0.5682943292316392e-04]
SOLVERS = ["rodas5p", "bdf"]


def _worst(sol, ref):
    ref = np.asarray(ref)
    return float((np.abs(sol.u.numpy() - ref) / np.abs(ref)).max())


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", ["robertson", pytest.param("hires", marks=pytest.mark.slow),
                                  pytest.param("vdp", marks=pytest.mark.slow)])
def test_stored_reference_problems(name, solver):
    times, _, ref = REFERENCES[name]
    atol = {"robertson": 1e-14, "hires": 1e-12, "vdp": 1e-10}[name]
    sol = sciode.solve(PROBLEMS[name](), solver, rtol=1e-8, atol=atol, saveat=times)
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    worst = _worst(sol, ref)
    print(f"{name} {solver}: worst relative error {worst:.1e}, stats {sol.stats}")
    assert worst <= 1e-4


@pytest.mark.parametrize("solver", SOLVERS)
def test_robertson_dae_form(solver):
    times, _, ref = REFERENCES["robertson"]
    sol = sciode.solve(stiff_problems.robertson_dae(), solver, rtol=1e-8, atol=1e-14, saveat=times)
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    worst = _worst(sol, ref)
    print(f"robertson DAE {solver}: worst relative error {worst:.1e}, stats {sol.stats}")
    assert worst <= 1e-4


@pytest.mark.parametrize("solver", ["bdf", pytest.param("rodas5p", marks=pytest.mark.slow)])
def test_pollu(solver):
    sol = sciode.solve(stiff_problems.pollu(), solver, rtol=1e-8, atol=1e-22, saveat=[0.0, 60.0])
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    worst = float((np.abs(sol.u[-1].numpy() - POLLU_REFERENCE) / np.abs(POLLU_REFERENCE)).max())
    print(f"POLLU {solver}: worst relative error {worst:.1e}, stats {sol.stats}")
    assert worst <= 1e-4


@pytest.mark.slow
def test_pollu_reference_matches_scipy_radau():
    prob = stiff_problems.pollu()
    f = lambda t, y: prob.f(torch.tensor(y), prob.p, t).numpy()  # noqa: E731
    res = solve_ivp(f, (0.0, 60.0), prob.u0.numpy(), method="Radau", rtol=1e-12, atol=1e-24)
    np.testing.assert_allclose(res.y[:, -1], POLLU_REFERENCE, rtol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("solver", SOLVERS)
def test_brusselator_500(solver):
    prob = stiff_problems.brusselator_1d(500)
    f = lambda t, y: prob.f(torch.tensor(y), prob.p, t).numpy()  # noqa: E731
    from sciode_scipy.member import sparsity

    ref = solve_ivp(f, prob.tspan, prob.u0.numpy(), method="Radau", rtol=1e-12, atol=1e-12,
                    jac_sparsity=sparsity(prob.jac_prototype, 1000)).y[:, -1]
    sol = sciode.solve(prob, solver, rtol=1e-8, atol=1e-8, saveat=[0.0, 10.0])
    worst = float((np.abs(sol.u[-1].numpy() - ref) / np.abs(ref)).max())
    print(f"Brusselator N=500 {solver}: worst relative error {worst:.1e}, stats {sol.stats}")
    assert worst <= 1e-4

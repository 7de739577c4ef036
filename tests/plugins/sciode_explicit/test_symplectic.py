"""Velocity Verlet keeps the Kepler energy error bounded over 1,000 periods; rk4 drifts."""
import math

import torch

import sciode

ECC = 0.5
PERIODS = 1000
STEPS_PER_PERIOD = 100


def kepler_acceleration(v, q, p, t):
    r3 = (q * q).sum(-1, keepdim=True).pow(1.5)
    return -q / r3


def energy(state):
    v, q = state[..., :2], state[..., 2:]
    return 0.5 * (v * v).sum(-1) - 1.0 / q.norm(dim=-1)


def energy_error(solver):
    q0 = torch.tensor([1 - ECC, 0.0], dtype=torch.float64)
    v0 = torch.tensor([0.0, math.sqrt((1 + ECC) / (1 - ECC))], dtype=torch.float64)
    prob = sciode.SecondOrderODEProblem(kepler_acceleration, v0, q0, (0.0, 2 * math.pi * PERIODS))
    sol = sciode.solve(prob, solver, dt=2 * math.pi / STEPS_PER_PERIOD, dense=False, max_steps=10**6)
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    err = (energy(sol.u) - energy(prob.u0)).abs()
    per_period = err[1:].reshape(PERIODS, STEPS_PER_PERIOD).max(-1).values
    return per_period


def test_verlet_energy_bounded_rk4_drifts():
    verlet = energy_error("verlet")
    rk4 = energy_error("rk4")
    v_first, v_last = float(verlet[:100].max()), float(verlet[-100:].max())
    r_first, r_last = float(rk4[:100].max()), float(rk4[-100:].max())
    print(f"\nKepler e={ECC}, {PERIODS} periods, {STEPS_PER_PERIOD} steps/period")
    print(f"  verlet energy error: first 100 periods {v_first:.3e}, last 100 periods {v_last:.3e}")
    print(f"  rk4    energy error: first 100 periods {r_first:.3e}, last 100 periods {r_last:.3e}")
    assert v_last < 1.5 * v_first  # bounded: no secular growth
    assert r_last > 5 * r_first  # rk4 drifts linearly
    assert r_last > v_last or r_last > 10 * r_first

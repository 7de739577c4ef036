"""Failed solves return retcodes and partial trajectories instead of raising."""
import math

import torch

import sciode
from sciode import ReturnCode


def decay(u, p, t):
    return -u


def test_max_steps_returns_partial_trajectory():
    prob = sciode.ODEProblem(decay, torch.ones(2, dtype=torch.float64), (0.0, 10.0))
    sol = sciode.solve(prob, "tsit5", max_steps=5)
    assert sol.retcode is ReturnCode.MAX_STEPS
    assert "max_steps" in sol.message
    assert 1 < sol.t.shape[0] <= 6 and float(sol.t[-1]) < 10.0
    assert torch.isfinite(sol.u).all()
    fixed = sciode.solve(prob, "rk4", dt=0.1, max_steps=10)
    assert fixed.retcode is ReturnCode.MAX_STEPS and fixed.t.shape[0] == 11


def test_blow_up_is_unstable_fixed_step():
    prob = sciode.ODEProblem(lambda u, p, t: u * u, torch.ones(1, dtype=torch.float64), (0.0, 2.0))
    sol = sciode.solve(prob, "rk4", dt=0.1)
    assert sol.retcode is ReturnCode.UNSTABLE
    assert "non-finite" in sol.message


def test_blow_up_adaptive_does_not_raise():
    prob = sciode.ODEProblem(lambda u, p, t: u * u, torch.ones(1, dtype=torch.float64), (0.0, 2.0))
    sol = sciode.solve(prob, "tsit5")
    assert sol.retcode in (ReturnCode.UNSTABLE, ReturnCode.DT_TOO_SMALL)
    assert float(sol.t[-1]) < 1.0 + 1e-6  # the singularity is at t = 1
    assert torch.isfinite(sol.u).all()


def test_nan_dynamics_are_unstable():
    def f(u, p, t):
        return torch.where(t > 0.5, torch.full_like(u, math.nan), -u)

    sol = sciode.solve(sciode.ODEProblem(f, torch.ones(1, dtype=torch.float64), (0.0, 1.0)), "tsit5")
    assert sol.retcode is ReturnCode.UNSTABLE
    assert float(sol.t[-1]) <= 0.5 + 1e-9


def test_step_size_collapse_is_dt_too_small():
    # |u|^(1/2) growth with a non-smooth kink makes the error estimate explode at t = 1
    def f(u, p, t):
        return 1.0 / (1.0 - t).abs().clamp_min(1e-300).sqrt() * torch.ones_like(u) * torch.sign(1.0 - t)

    sol = sciode.solve(sciode.ODEProblem(f, torch.zeros(1, dtype=torch.float64), (0.0, 2.0)), "tsit5",
                       rtol=1e-10, atol=1e-12)
    assert sol.retcode is ReturnCode.DT_TOO_SMALL, sol.message
    assert "step size" in sol.message


def test_batch_retcodes_per_member_and_in_xarray():
    rates = torch.tensor([[1.0], [1.0], [-1.0], [1.0]], dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: p * u * u, torch.ones(4, 1, dtype=torch.float64) * 0.5, (0.0, 3.0), rates)
    sol = sciode.solve(prob, "tsit5", stepping="per_member", saveat=6)
    codes = [ReturnCode(int(c)) for c in sol.retcodes]
    assert codes[2] is ReturnCode.SUCCESS
    assert all(c in (ReturnCode.UNSTABLE, ReturnCode.DT_TOO_SMALL) for c in (codes[0], codes[1], codes[3]))
    assert sol.retcode is not ReturnCode.SUCCESS
    assert "member (0,)" in sol.message and "3 of 4 members failed" in sol.message
    # the successful member is right, and failed members are NaN after they stopped
    torch.testing.assert_close(sol.u[-1, 2, 0], torch.tensor(0.5 / (1 + 1.5), dtype=torch.float64), rtol=1e-6, atol=0)
    assert torch.isnan(sol.u[-1, 0]).all()
    ds = sol.to_xarray()
    assert list(ds["retcode"].values) == [int(c) for c in codes]
    assert ds["retcode"].attrs["flag_meanings"].split()[0] == "success"


def test_fixed_step_member_blow_up_flags_only_that_member():
    rates = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: p * u * u, torch.ones(2, 1, dtype=torch.float64), (0.0, 2.0), rates)
    sol = sciode.solve(prob, "rk4", dt=0.05)
    assert sol.member_retcode(0) is ReturnCode.UNSTABLE
    assert sol.member_retcode(1) is ReturnCode.SUCCESS
    torch.testing.assert_close(sol.u[-1, 1, 0], torch.tensor(1 / 3, dtype=torch.float64), rtol=1e-6, atol=0)


def test_success_message_and_stats():
    sol = sciode.solve(sciode.ODEProblem(decay, torch.ones(1), (0.0, 1.0)), "dopri5")
    assert sol.retcode is ReturnCode.SUCCESS and sol.successful
    assert set(sol.stats) >= {"nfe", "njac", "nlinsolve", "nsteps", "naccepted", "nrejected"}
    assert all(isinstance(v, int) for v in sol.stats.values())
    assert sol.stats["nsteps"] == sol.stats["naccepted"] + sol.stats["nrejected"]

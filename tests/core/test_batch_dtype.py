"""Batches equal per-member solves; dtypes and devices are preserved."""
import pytest
import torch

import sciode
from sciode import testing

FIXED = ["euler", "midpoint", "heun", "rk4", "nystrom2"]
ADAPTIVE = ["bosh3", "dopri5", "tsit5"]


@pytest.mark.parametrize("solver", FIXED)
def test_fixed_step_batch_is_exact(solver):
    assert testing.assert_batch_consistent(solver, dt=0.01) == 0.0


@pytest.mark.parametrize("solver", ADAPTIVE)
def test_adaptive_per_member_batch_within_tolerance(solver):
    worst = testing.assert_batch_consistent(solver, dt=None, rtol=1e-6, atol=1e-9, stepping="per_member")
    print(f"{solver}: largest batch-vs-single difference {worst:.2e}")


@pytest.mark.parametrize("solver", ADAPTIVE)
def test_adaptive_shared_batch_within_tolerance(solver):
    testing.assert_batch_consistent(solver, dt=None, rtol=1e-6, atol=1e-9, exact=False)


@pytest.mark.parametrize("solver", ADAPTIVE)
def test_adaptive_at_fixed_step_is_exact(solver):
    assert testing.assert_batch_consistent(solver, dt=0.01, adaptive=False) == 0.0


@pytest.mark.parametrize("solver", FIXED + ADAPTIVE + ["verlet", "rkn4"])
def test_dtype_preserved(solver):
    testing.assert_dtype_preserved(solver)


def test_multiple_batch_dims():
    u0 = torch.rand(3, 4, 2, dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: -u, u0, (0.0, 1.0))
    for stepping in ("shared", "per_member"):
        sol = sciode.solve(prob, "tsit5", saveat=3, stepping=stepping)
        assert sol.u.shape == (4, 3, 4, 2)
        assert sol.retcodes.shape == (3, 4)
        torch.testing.assert_close(sol.u[-1], u0 * torch.exp(torch.tensor(-1.0, dtype=torch.float64)),
                                   rtol=1e-5, atol=1e-8)


def test_per_member_steps_independently():
    """A fast member does not force small steps on a slow one."""
    k = torch.tensor([[0.1], [100.0]], dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: -p * u, torch.ones(2, 1, dtype=torch.float64), (0.0, 1.0), k)
    sol = sciode.solve(prob, "tsit5", stepping="per_member", rtol=1e-6)
    slow_alone = sciode.solve(sciode.remake(prob, u0=torch.ones(1, dtype=torch.float64), p=k[0]), "tsit5", rtol=1e-6)
    fast_alone = sciode.solve(sciode.remake(prob, u0=torch.ones(1, dtype=torch.float64), p=k[1]), "tsit5", rtol=1e-6)
    assert sol.stats["naccepted"] == slow_alone.stats["naccepted"] + fast_alone.stats["naccepted"]
    assert sol.stats["iterations"] < slow_alone.stats["iterations"] + fast_alone.stats["iterations"]
    torch.testing.assert_close(sol.u[-1, :, 0], torch.exp(-k[:, 0]), rtol=1e-5, atol=1e-9)


def test_time_dependent_f_sees_member_clock():
    seen = []

    def f(u, p, t):
        seen.append(tuple(t.shape))
        return torch.cos(t) * torch.ones_like(u)

    prob = sciode.ODEProblem(f, torch.zeros(3, 2, dtype=torch.float64), (0.0, 2.0))
    sol = sciode.solve(prob, "tsit5", stepping="per_member", rtol=1e-9, atol=1e-12)
    assert (3, 1) in seen
    torch.testing.assert_close(sol.u[-1], torch.full((3, 2), torch.sin(torch.tensor(2.0)).item(), dtype=torch.float64),
                               rtol=1e-7, atol=1e-9)

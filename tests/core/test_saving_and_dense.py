"""saveat, dense output, backward integration and float32/float64 behaviour of the loop."""
import math

import pytest
import torch

import sciode


def decay(u, p, t):
    return -u


def test_saveat_count_gives_equal_intervals():
    prob = sciode.ODEProblem(decay, torch.ones(1, dtype=torch.float64), (0.0, 2.0))
    sol = sciode.solve(prob, "tsit5", saveat=4, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(sol.t, torch.linspace(0, 2, 5, dtype=torch.float64))
    torch.testing.assert_close(sol.u[:, 0], torch.exp(-sol.t), rtol=1e-8, atol=0)
    assert not sol.has_dense_output  # saveat alone does not keep every step
    assert sciode.solve(prob, "tsit5", saveat=4, dense=True).has_dense_output


def test_saveat_on_fixed_grid_hits_step_values_exactly():
    prob = sciode.ODEProblem(decay, torch.ones(2, dtype=torch.float64), (0.0, 1.0))
    every = sciode.solve(prob, "rk4", dt=0.1)
    some = sciode.solve(prob, "rk4", dt=0.1, saveat=every.t[::2])
    assert torch.equal(some.u, every.u[::2])


def test_backward_integration():
    prob = sciode.ODEProblem(decay, torch.ones(1, dtype=torch.float64), (2.0, 0.0))
    for solver, kw in [("tsit5", {}), ("rk4", dict(dt=0.01))]:
        sol = sciode.solve(prob, solver, **kw)
        assert float(sol.t[0]) == 2.0 and float(sol.t[-1]) == 0.0
        assert bool((sol.t[1:] < sol.t[:-1]).all())
        assert sol.u[-1, 0].item() == pytest.approx(math.exp(2.0), rel=1e-7)
        assert sol(1.0)[0].item() == pytest.approx(math.exp(1.0), rel=1e-6)


def test_dense_output_vector_and_scalar_times():
    prob = sciode.ODEProblem(decay, torch.ones(3, 2, dtype=torch.float64), (0.0, 1.0))
    sol = sciode.solve(prob, "dopri5", rtol=1e-10, atol=1e-12)
    times = torch.tensor([0.9, 0.05, 0.5], dtype=torch.float64)
    values = sol(times)
    assert values.shape == (3, 3, 2)
    torch.testing.assert_close(values, torch.exp(-times)[:, None, None].expand(3, 3, 2), rtol=1e-8, atol=0)
    assert sol(0.0).shape == (3, 2) and torch.equal(sol(1.0), sol.u[-1])


def test_saveat_and_dense_per_member_at_different_step_sizes():
    k = torch.tensor([[0.5], [5.0], [50.0]], dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: -p * u, torch.ones(3, 1, dtype=torch.float64), (0.0, 1.0), k)
    times = torch.linspace(0, 1, 11, dtype=torch.float64)
    sol = sciode.solve(prob, "tsit5", stepping="per_member", saveat=times, dense=True, rtol=1e-9, atol=1e-12)
    expected = torch.exp(-k[None, :, 0] * times[:, None])[..., None]
    torch.testing.assert_close(sol.u, expected, rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(sol(times), expected, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_precision_is_kept_and_accuracy_matches(dtype):
    prob = sciode.ODEProblem(decay, torch.ones(4, dtype=dtype), (0.0, 1.0))
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    sol = sciode.solve(prob, "tsit5", rtol=rtol, atol=rtol * 1e-2)
    assert sol.u.dtype == dtype and sol.t.dtype == dtype
    assert abs(sol.u[-1, 0].item() - math.exp(-1)) < 50 * rtol


def test_progress_bar_runs(capsys):
    prob = sciode.ODEProblem(decay, torch.ones(1), (0.0, 1.0))
    sol = sciode.solve(prob, "rk4", dt=0.001, progress=True)
    assert sol.retcode is sciode.ReturnCode.SUCCESS
    assert "rk4" in capsys.readouterr().err


def test_nystrom_second_order_and_kepler_reference():
    """Verlet and rkn4 on the oscillator state layout [v, u]."""
    prob = sciode.SecondOrderODEProblem(lambda v, u, p, t: -u, torch.zeros(1, dtype=torch.float64),
                                        torch.ones(1, dtype=torch.float64), (0.0, 1.0), state_names=["x"])
    assert prob.state_names == ("dx", "x")
    sol = sciode.solve(prob, "rkn4", dt=0.01)
    assert sol.u[-1, 1].item() == pytest.approx(math.cos(1.0), abs=1e-9)
    assert sol.u[-1, 0].item() == pytest.approx(-math.sin(1.0), abs=1e-9)

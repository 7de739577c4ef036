"""Latent ODE, ODE-RNN and RNN baselines on irregular series; the time-series data sets and netCDF loader."""
from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path

import pytest
import torch

import sciode
from sciode_models.latent_ode import ODERNN, LatentODE, RNNBaseline
from sciode_models.timeseries import damped_oscillators, load_netcdf, save_netcdf, spirals

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _small(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "latent_ode":
        return LatentODE(None, 2, 3, hidden_dim=16, rec_dim=16, solver="rk4", dt=0.25)
    return ODERNN(2, 16, ode_hidden=16) if name == "ode_rnn" else RNNBaseline(2, 16)


def test_elbo_is_finite_and_decreases_over_a_few_steps() -> None:
    data = spirals(16, 20, t_max=5.0, seed=1)
    model = _small("latent_ode")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def elbo() -> torch.Tensor:
        torch.manual_seed(123)  # the same z0 noise for every evaluation
        return model.elbo(data.t, data.x, data.mask)

    start = float(elbo().detach())
    assert math.isfinite(start)
    for _ in range(6):
        opt.zero_grad()
        (-elbo()).backward()
        opt.step()
    end = float(elbo().detach())
    assert math.isfinite(end) and end > start + 0.1 * abs(start), (start, end)


@pytest.mark.parametrize("name", ["latent_ode", "ode_rnn", "rnn"])
def test_missing_values_do_not_change_the_loss(name: str) -> None:
    data = damped_oscillators(8, 15, t_max=5.0, missing=0.4, seed=2)
    model = _small(name)
    assert bool((data.mask == 0).any())
    garbage = torch.where(data.mask > 0, data.x, torch.full_like(data.x, math.nan))
    other = torch.where(data.mask > 0, data.x, 100 * torch.randn_like(data.x))
    losses = []
    for x in (data.x, garbage, other):
        torch.manual_seed(7)
        losses.append(float(model.loss(data.t, x, data.mask).detach()))
    assert math.isfinite(losses[0]) and losses[0] == losses[1] == losses[2]
    observed_change = data.x.clone()
    observed_change[data.mask > 0] += 0.5
    torch.manual_seed(7)
    assert float(model.loss(data.t, observed_change, data.mask).detach()) != losses[0]  # observed values do matter


@pytest.mark.parametrize("name", ["latent_ode", "ode_rnn", "rnn"])
def test_predict_shapes_for_irregular_query_times(name: str) -> None:
    data = spirals(5, 12, t_max=4.0, seed=3)
    model = _small(name)
    t_query = torch.tensor([3.7, 0.0, 6.5, 1.234, 1.234, 9.0, 0.05])  # unsorted, repeated, beyond the data
    with torch.no_grad():
        pred = model.predict(data.t, data.x, data.mask, t_query)
    assert pred.shape == (5, 7, 2) and bool(torch.isfinite(pred).all())
    assert torch.equal(pred[:, 3], pred[:, 4])
    with torch.no_grad():
        ordered = model.predict(data.t, data.x, data.mask, t_query.sort().values)
    torch.testing.assert_close(ordered, pred[:, t_query.argsort()])


def test_latent_ode_samples_and_queries_before_the_first_observation() -> None:
    data = spirals(4, 10, t_max=4.0, seed=4)
    late = data.window(1.0, 4.0)
    model = _small("latent_ode")
    with torch.no_grad():
        draws = model.predict(late.t, late.x, late.mask, torch.tensor([0.0, 2.0, 5.0]), samples=3)
    assert draws.shape == (3, 4, 3, 2) and not torch.allclose(draws[0], draws[1])


def test_latent_ode_takes_any_registered_solver() -> None:
    data = spirals(4, 10, t_max=4.0, seed=5)
    model = _small("latent_ode")
    queries = torch.linspace(0.0, 6.0, 7)
    with torch.no_grad():
        fixed = model.predict(data.t, data.x, data.mask, queries)
        model.solver, model.solve_options = "dopri5", {"rtol": 1e-7, "atol": 1e-9}
        adaptive = model.predict(data.t, data.x, data.mask, queries)
    torch.testing.assert_close(fixed, adaptive, atol=1e-4, rtol=1e-3)


def test_bad_series_shapes_raise_problem_error() -> None:
    data = spirals(3, 8, seed=0)
    model = _small("ode_rnn")
    with pytest.raises(sciode.ProblemError, match="x_obs"):
        model.loss(data.t, data.x[:, :5], data.mask[:, :5])
    with pytest.raises(sciode.ProblemError, match="mask"):
        model.loss(data.t, data.x, data.mask[..., :1])
    with pytest.raises(sciode.ProblemError, match="increasing"):
        model.loss(data.t.flip(0), data.x, data.mask)


def test_models_are_registered() -> None:
    models = sciode.models()
    for cls in (LatentODE, ODERNN, RNNBaseline):
        assert models.get(cls.name) is cls


# -- data sets --------------------------------------------------------------------------------

def test_synthetic_sets_are_deterministic_and_irregular() -> None:
    a, b = spirals(6, 30, seed=9), spirals(6, 30, seed=9)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask)
    assert a.x.shape == (6, 30, 2) and bool((a.t[1:] > a.t[:-1]).all())
    assert not torch.equal(a.mask[0], a.mask[1])  # series keep different times
    torch.testing.assert_close(a.truth.norm(dim=-1)[:, -1] - a.truth.norm(dim=-1)[:, 0],
                               torch.full((6,), 0.1 * float(a.t[-1])), atol=1e-5, rtol=0)
    osc = damped_oscillators(200, 30, missing=0.3, keep=1.0, seed=1)
    missing = 1 - float(osc.mask[:, 1:].mean())
    assert 0.25 < missing < 0.35
    assert not torch.equal(osc.mask[..., 0], osc.mask[..., 1])  # channels go missing independently


def test_netcdf_round_trip(tmp_path: Path) -> None:
    data = damped_oscillators(5, 12, seed=3)
    path = tmp_path / "series.nc"
    save_netcdf(data, path)
    back = load_netcdf(path, truth="truth")
    assert torch.equal(back.mask, data.mask) and back.channels == ("position", "velocity")
    torch.testing.assert_close(back.x * back.mask, data.x * data.mask)
    torch.testing.assert_close(back.truth, data.truth)
    torch.testing.assert_close(back.t, data.t)
    no_mask = load_netcdf(data.to_dataset().drop_vars("mask"))  # NaN marks the missing entries
    assert torch.equal(no_mask.mask, data.mask)
    with pytest.raises(sciode.ProblemError, match="dims"):
        load_netcdf(data.to_dataset().transpose("time", "series", "channel").rename({"channel": "c"}))
    with pytest.raises(sciode.ProblemError, match="variable 'y'"):
        load_netcdf(path, variable="y")


@pytest.mark.slow
def test_latent_ode_example_quick_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["latent_ode_spirals.py", "--quick", "--outdir", str(tmp_path)])
    runpy.run_path(str(ROOT / "examples" / "latent_ode_spirals.py"), run_name="__main__")
    assert (tmp_path / "latent_ode_spirals.png").stat().st_size > 0
    assert (tmp_path / "latent_ode_spirals.nc").stat().st_size > 0

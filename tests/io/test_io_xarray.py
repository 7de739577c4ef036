"""Solution.to_xarray(): dims, coords, CF attributes, retcodes, stats, dense grids, detaching."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sciode
from sciode.io.xarray import solution_to_dataset


def decay(u, p, t):
    return -p * u


def make_problem(batch=(3,), **meta):
    u0 = torch.linspace(1.0, 2.0, int(np.prod(batch)) * 2, dtype=torch.float64).reshape(*batch, 2)
    p = torch.tensor([0.5, 2.0], dtype=torch.float64)
    return sciode.ODEProblem(decay, u0, (0.0, 1.0), p, **meta)


def test_dims_coords_and_values():
    prob = make_problem(state_names=["x", "y"], time_units="s", name="decay")
    sol = sciode.solve(prob, "tsit5", saveat=10)
    ds = sol.to_xarray()
    assert ds["u"].dims == ("member", "time", "state")  # the batch output's order: members first
    assert list(ds["state"].values) == ["x", "y"]
    np.testing.assert_array_equal(ds["time"].values, sol.t.numpy())
    np.testing.assert_array_equal(ds["u"].values, sol.u.numpy().transpose(1, 0, 2))
    assert ds["time"].attrs["units"] == "s"
    assert ds.attrs["title"] == "decay"
    assert ds.attrs["solver"] == "tsit5" and ds.attrs["sensealg"] == "none"
    assert ds.attrs["rtol"] == 1e-6 and ds.attrs["atol"] == 1e-9
    assert ds.attrs["sciode_version"] == sciode.__version__
    assert ds.attrs["created"].endswith("+00:00")
    assert ds.attrs["stats_nfe"] == sol.stats["nfe"] and ds.attrs["stats_nsteps"] == sol.stats["nsteps"]


def test_default_state_names_and_single_system_and_2d_batch():
    single = sciode.solve(make_problem(batch=()), "rk4", dt=0.1)
    ds = single.to_xarray()
    assert ds["u"].dims == ("time", "state") and list(ds["state"].values) == ["u0", "u1"]
    assert ds["retcode"].dims == () and int(ds["retcode"]) == sciode.ReturnCode.SUCCESS
    grid = sciode.solve(make_problem(batch=(2, 3)), "rk4", dt=0.1).to_xarray()
    assert grid["u"].dims == ("member_0", "member_1", "time", "state")
    assert grid["retcode"].shape == (2, 3)


def test_cf_attributes_from_the_problem():
    prob = make_problem(state_names=["x", "y"], state_units=["m", "m s-1"], state_long_names="amount",
                        state_standard_names=["sea_water_temperature", "sea_water_salinity"])
    ds = sciode.solve(prob, "tsit5", saveat=4).to_xarray()
    assert list(ds["state_units"].values) == ["m", "m s-1"]
    assert list(ds["state_standard_name"].values) == ["sea_water_temperature", "sea_water_salinity"]
    assert ds["u"].attrs["long_name"] == "amount"  # shared by all states: also an attribute of u
    assert "units" not in ds["u"].attrs  # units differ per state: only the auxiliary coordinate has them
    assert ds["time"].attrs["standard_name"] == "time"
    assert ds.attrs["Conventions"].startswith("CF-")


def test_state_standard_names_validation():
    with pytest.raises(sciode.ProblemError, match="state_standard_names"):
        make_problem(state_standard_names=["only_one"])
    prob = make_problem(state_standard_names="air_temperature")
    assert prob.state_standard_names == ("air_temperature", "air_temperature")
    assert sciode.remake(prob, u0=prob.u0 * 2).state_standard_names == ("air_temperature", "air_temperature")


def test_retcode_flag_variable_and_per_member_stats():
    def blowup(u, p, t):
        return u * u * p

    u0 = torch.tensor([[1.0], [1.0], [1.0]], dtype=torch.float64)
    p = torch.tensor([[0.1], [5.0], [0.2]], dtype=torch.float64)  # member 1 blows up at t = 0.2
    sol = sciode.solve(sciode.ODEProblem(blowup, u0, (0.0, 1.0), p), "tsit5", saveat=5, stepping="per_member")
    ds = sol.to_xarray()
    codes = ds["retcode"].values
    assert codes[0] == codes[2] == sciode.ReturnCode.SUCCESS and codes[1] != sciode.ReturnCode.SUCCESS
    assert ds["retcode"].dtype == np.int8
    meanings = ds["retcode"].attrs["flag_meanings"].split()
    by_value = dict(zip(ds["retcode"].attrs["flag_values"].tolist(), meanings))
    assert by_value[int(codes[1])] == sciode.ReturnCode(int(codes[1])).name.lower()
    assert ds["naccepted"].dims == ("member",)
    assert int(ds["naccepted"].sum()) == sol.stats["naccepted"]
    assert ds["naccepted"].values[1] != ds["naccepted"].values[0]


def test_member_labels():
    sol = sciode.solve(make_problem(), "rk4", dt=0.25)
    ds = sol.to_xarray(members=["a", "b", "c"])
    assert list(ds["member"].values) == ["a", "b", "c"]
    assert ds["u"].sel(member="b").shape == (5, 2)
    with pytest.raises(sciode.ProblemError, match="3 labels"):
        sol.to_xarray(members=["a"])
    with pytest.raises(sciode.ProblemError, match="unknown member dim"):
        sol.to_xarray(members={"run": [1, 2, 3]})


def test_dense_output_on_a_time_grid():
    prob = make_problem()
    sol = sciode.solve(prob, "tsit5", rtol=1e-10, atol=1e-12)
    grid = torch.linspace(0.0, 1.0, 7, dtype=torch.float64)
    ds = sol.to_xarray(times=grid)
    np.testing.assert_allclose(ds["time"].values, grid.numpy())
    exact = prob.u0.numpy()[None] * np.exp(-prob.p.numpy()[None, None] * grid.numpy()[:, None, None])
    np.testing.assert_allclose(ds["u"].transpose("time", ...).values, exact, rtol=1e-7)
    assert ds.attrs["time_grid"] == "dense output"
    no_dense = sciode.solve(prob, "tsit5", saveat=3)
    with pytest.raises(sciode.ProblemError, match="no dense output"):
        no_dense.to_xarray(times=grid)


def test_detaches_from_autograd():
    p = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    prob = sciode.ODEProblem(decay, torch.ones(2, 2, dtype=torch.float64), (0.0, 1.0), p)
    sol = sciode.solve(prob, "rk4", dt=0.1)
    assert sol.u.requires_grad
    ds = solution_to_dataset(sol)
    ds["u"].values[...] = 0.0  # a copy: the Solution is untouched
    assert float(sol.u.detach().abs().min()) > 0
    sol.u.sum().backward()
    assert p.grad is not None


def test_solver_named_member_dims():
    sol = sciode.solve(make_problem(batch=(2, 3)), "rk4", dt=0.5)
    sol.member_dims = ("sample", "site")
    ds = sol.to_xarray(members={"site": ["x", "y", "z"]})
    assert ds["u"].dims == ("sample", "site", "time", "state") and ds["retcode"].dims == ("sample", "site")
    assert list(ds["site"].values) == ["x", "y", "z"]

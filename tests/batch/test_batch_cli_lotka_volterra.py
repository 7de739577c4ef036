"""``sciode run`` as a user runs it: 1,000 Lotka-Volterra members from a netCDF file, one of them blowing up."""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from batch_helpers import BLOWUP, LV_SCRIPT, lv_members, run_cli

import sciode

N = 1000


def solve_alone(ds: xr.Dataset, i: int, saveat: int) -> sciode.Solution:
    """Member i solved by itself, as a user would without the batch runner."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lv_problem", LV_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inputs = {name: torch.from_numpy(ds[name].values[i:i + 1].copy()) for name in ds.data_vars}
    return sciode.solve(module.problem(inputs), "tsit5", saveat=saveat, stepping="per_member")


def test_cli_run_thousand_members(tmp_path):
    members = lv_members(N)
    members.to_netcdf(tmp_path / "members.nc")
    out_path = tmp_path / "traj.nc"
    done = run_cli("run", str(LV_SCRIPT), "--input", str(tmp_path / "members.nc"), "--output", str(out_path),
                   "--saveat", "50", "--chunk", "250")
    assert done.returncode == 0, done.stderr
    assert "member" in done.stderr and "failed=1" in done.stderr  # the progress bar counts failures
    out = sciode.io.load(out_path)
    assert out["u"].dims == ("member", "time", "state")
    assert out.sizes == {"member": N, "time": 51, "state": 2}
    assert list(out["state"].values) == ["prey", "predator"]
    assert list(out["member"].values) == list(members["member"].values)
    np.testing.assert_allclose(out["time"].values, np.linspace(0.0, 20.0, 51))
    for name in ("alpha", "beta", "delta", "gamma", "prey0", "predator0"):
        np.testing.assert_array_equal(out[name].values, members[name].values)  # inputs carried along
    assert out["alpha"].attrs["long_name"] == "alpha"
    assert out.attrs["solver"] == "tsit5" and out.attrs["members"] == N and out.attrs["failed_members"] == 1

    codes = out["retcode"].values
    assert codes[BLOWUP] != sciode.ReturnCode.SUCCESS
    assert (np.delete(codes, BLOWUP) == sciode.ReturnCode.SUCCESS).all()
    assert np.isnan(out["u"].values[BLOWUP, -1]).all()
    assert out["message"].values[BLOWUP].startswith(sciode.ReturnCode(int(codes[BLOWUP])).name)
    assert np.isfinite(np.delete(out["u"].values, BLOWUP, axis=0)).all()

    for i in (0, 1, 249, 250, 511, 998, 999):  # chunk edges and a few others, each solved alone
        alone = solve_alone(members, i, 50)
        np.testing.assert_allclose(out["u"].values[i], alone.u[:, 0].numpy(), rtol=1e-10, atol=1e-12)
    alone = solve_alone(members, BLOWUP, 50)
    assert int(alone.retcodes[0]) == codes[BLOWUP]

"""Chunks on a real dask.distributed LocalCluster (2 worker processes, loopback) give the in-process dataset."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from batch_helpers import LV_SCRIPT, lv_members, without_timestamps

import sciode


@pytest.mark.slow
def test_local_cluster_matches_in_process(tmp_path):
    lv_members(400).to_netcdf(tmp_path / "members.nc")
    common = dict(saveat=40, chunk=100, progress=False)
    local = sciode.run_batch(LV_SCRIPT, tmp_path / "members.nc", tmp_path / "local.nc", **common)
    dask = sciode.run_batch(LV_SCRIPT, tmp_path / "members.nc", tmp_path / "dask.nc", workers=2, **common)
    xr.testing.assert_identical(without_timestamps(local), without_timestamps(dask))
    for name in local.variables:  # bit for bit, not just close
        assert np.array_equal(local[name].values, dask[name].values, equal_nan=local[name].dtype.kind == "f"), name
    assert int((dask["retcode"].values != 1).sum()) == 1


@pytest.mark.slow
def test_join_existing_scheduler_fixed_step_bit_for_bit(tmp_path):
    from distributed import LocalCluster

    lv_members(300, blowup=None).to_netcdf(tmp_path / "members.nc")
    common = dict(solver="rk4", dt=0.01, saveat=20, chunk=75, progress=False)
    local = sciode.run_batch(LV_SCRIPT, tmp_path / "members.nc", **common)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        remote = sciode.run_batch(LV_SCRIPT, tmp_path / "members.nc", scheduler=cluster.scheduler_address, **common)
    xr.testing.assert_identical(without_timestamps(local), without_timestamps(remote))
    assert np.array_equal(local["u"].values, remote["u"].values)

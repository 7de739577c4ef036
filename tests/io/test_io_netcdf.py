"""sciode.io.save / load: lossless round trips, compression, atomic writes, and Dataset -> tensors."""
from __future__ import annotations

import os

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

import sciode
from sciode.io import load, read_observations, read_state, read_tensors, save
from sciode.io.netcdf import atomic_path


def lotka(u, p, t):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([p[..., 0] * x - p[..., 1] * x * y, p[..., 2] * x * y - p[..., 3] * y], -1)


@pytest.fixture
def solution():
    u0 = torch.tensor([[10.0, 5.0], [8.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    p = torch.tensor([[1.5, 1.0, 1.0, 3.0], [1.1, 0.4, 0.1, 0.4], [1.0, -50.0, 50.0, 1.0]], dtype=torch.float64)
    prob = sciode.ODEProblem(lotka, u0, (0.0, 5.0), p, state_names=["prey", "predator"], state_units="1",
                             state_long_names=["prey", "predators"], time_units="d", name="LV")
    return sciode.solve(prob, "tsit5", saveat=20, stepping="per_member")


def assert_lossless(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a, b)
    for name in a.variables:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name].values, b[name].values)
    for key, value in a.attrs.items():
        same_type = type(b.attrs[key]) in (type(value), np.dtype(type(value)).type)
        assert same_type or np.asarray(value).dtype == np.asarray(b.attrs[key]).dtype, key


def test_solution_round_trip_is_lossless(tmp_path, solution):
    ds = solution.to_xarray(members=["a", "b", "c"])
    path = save(solution.to_xarray(members=["a", "b", "c"]), tmp_path / "sol.nc")
    back = load(path)
    ds.attrs["created"] = back.attrs["created"]  # two to_xarray calls may straddle a second
    ds.attrs["history"] = back.attrs["history"]
    assert_lossless(ds, back)
    assert back["u"].dtype == np.float64 and back["retcode"].dtype == np.int8 and back["member"].dtype.kind == "U"


def test_save_accepts_a_solution_and_keeps_nan_and_float32(tmp_path, solution):
    assert int(load(save(solution, tmp_path / "s.nc"))["retcode"].values[2]) != sciode.ReturnCode.SUCCESS
    ds = xr.Dataset({"a": (("member", "k"), np.array([[1.5, np.nan], [np.inf, -0.0]], dtype=np.float32)),
                     "i": ("member", np.array([1, -2], dtype=np.int64)),
                     "flag": ("member", np.array([True, False]))},
                    coords={"member": ["x", "y"]}, attrs={"n": np.int32(3), "scale": 0.25, "list": [1.0, 2.0]})
    back = load(save(ds, tmp_path / "d.nc"))
    assert_lossless(ds, back)
    assert back["a"].dtype == np.float32 and np.isnan(back["a"].values[0, 1]) and np.signbit(back["a"].values[1, 1])


def test_compression_and_chunking_on_by_default(tmp_path):
    u = np.zeros((400, 1000, 2))  # 6.4 MB of zeros: compresses to almost nothing
    ds = xr.Dataset({"u": (("time", "member", "state"), u)})
    path = save(ds, tmp_path / "z.nc")
    with netCDF4.Dataset(path) as nc:
        filters = nc["u"].filters()
        chunks = nc["u"].chunking()
    assert filters["zlib"] and filters["shuffle"]
    assert chunks[0] == 400 and chunks[2] == 2 and chunks[1] < 1000  # whole trajectories, members split
    assert os.path.getsize(path) < 200_000
    raw = save(ds, tmp_path / "raw.nc", compress=False)
    assert os.path.getsize(raw) > 6_000_000


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path, solution):
    path = tmp_path / "keep.nc"
    save(solution, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.nc"]  # no temporary left behind
    with pytest.raises(sciode.ProblemError, match="exists"):
        save(solution, path, overwrite=False)
    with pytest.raises(sciode.ProblemError, match="cannot be stored"):
        save(xr.Dataset(attrs={"ok": True}), tmp_path / "b.nc")


def test_load_rejects_missing_and_non_netcdf_files(tmp_path):
    with pytest.raises(sciode.ProblemError, match="does not exist"):
        load(tmp_path / "missing.nc")
    bad = tmp_path / "notes.nc"
    bad.write_text("not a netCDF file")
    with pytest.raises(sciode.ProblemError, match="not a netCDF file"):
        load(bad)


def test_dataset_to_tensors(tmp_path):
    ds = xr.Dataset({"x0": ("member", [1.0, 2.0]), "y0": ("member", [3.0, 4.0]),
                     "k": (("param", "member"), [[0.1, 0.2], [0.3, 0.4]]),
                     "obs": (("time", "member"), [[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]])},
                    coords={"time": [0.0, 0.5, 1.0]})
    path = save(ds, tmp_path / "in.nc")
    u0 = read_state(path, ["x0", "y0"])
    assert u0.shape == (2, 2) and u0.dtype == torch.float64 and u0[1].tolist() == [2.0, 4.0]
    tensors = read_tensors(ds, ["k"], dtype=torch.float32)
    assert tensors["k"].shape == (2, 2) and tensors["k"][0].tolist() == pytest.approx([0.1, 0.3])  # member first
    t, y = read_observations(ds, "obs")
    assert t.tolist() == [0.0, 0.5, 1.0] and y.shape == (3, 2) and torch.isnan(y[0, 1])
    with pytest.raises(sciode.ProblemError, match="'z0' is not in the dataset"):
        read_state(ds, ["x0", "z0"])
    with pytest.raises(sciode.ProblemError, match="no 'time' dim"):
        read_observations(ds, "x0")
    prob = sciode.ODEProblem(lambda u, p, t: -u, read_state(ds, ["x0", "y0"]), (0.0, 1.0))
    assert prob.batch_shape == (2,)

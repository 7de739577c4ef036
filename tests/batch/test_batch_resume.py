"""Resuming never mixes configurations: the key covers what the script produced, and every stored chunk is checked."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from batch_helpers import without_timestamps

import sciode

SCRIPT = '''
import os
import torch
import sciode


def decay(u, p, t):
    return -p * u


def problem(inputs):
    ids = inputs["id"]
    stop = os.environ.get("RESUME_TEST_INTERRUPT_AT")
    if stop is not None and int(stop) in ids.tolist():
        raise KeyboardInterrupt
    scale = float(os.environ.get("SCALE", "1"))
    u0 = torch.stack([inputs["x0"], 2 * inputs["x0"]], dim=-1) * scale
    return sciode.ODEProblem(decay, u0, (0.0, 1.0), inputs["k"][:, None], state_names=["a", "b"])
'''
N = 20
OPTIONS = dict(solver="rk4", dt=0.01, saveat=10, chunk=2, progress=False)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "scaled_problem.py"
    script.write_text(SCRIPT)
    ds = xr.Dataset({"id": ("member", np.arange(N)), "k": ("member", np.linspace(0.1, 2.0, N)),
                     "x0": ("member", np.linspace(1.0, 3.0, N))})
    ds.to_netcdf(tmp_path / "members.nc")
    return script, tmp_path / "members.nc"


def assert_same_file(path: Path, fresh: xr.Dataset) -> None:
    """Value for value and attribute for attribute (creation times aside)."""
    written = without_timestamps(sciode.io.load(path))
    xr.testing.assert_identical(written, without_timestamps(fresh))
    for name in fresh.variables:
        assert written[name].attrs.keys() == fresh[name].attrs.keys(), name


def test_environment_change_is_not_resumed(setup, tmp_path, monkeypatch, capsys):
    """SCALE=1 interrupted after 8 of 10 chunks, rerun with SCALE=2: every member holds SCALE=2 values."""
    script, members = setup
    output = tmp_path / "traj.nc"
    monkeypatch.setenv("SCALE", "1")
    monkeypatch.setenv("RESUME_TEST_INTERRUPT_AT", "16")
    with pytest.raises(KeyboardInterrupt):
        sciode.run_batch(script, members, output, **OPTIONS)
    assert len(list((tmp_path / ".sciode-partial-traj.nc").glob("chunk-*.nc"))) == 8
    monkeypatch.delenv("RESUME_TEST_INTERRUPT_AT")
    monkeypatch.setenv("SCALE", "2")
    resumed = sciode.run_batch(script, members, output, **{**OPTIONS, "progress": True})
    assert "not resuming" in capsys.readouterr().err
    fresh = sciode.run_batch(script, members, None, **OPTIONS)
    xr.testing.assert_identical(without_timestamps(resumed), without_timestamps(fresh))
    assert_same_file(output, fresh)
    np.testing.assert_allclose(resumed["u"].isel(time=0).sel(state="a").values, 2 * resumed["x0"].values)


def make_problem(t1: float):
    import torch

    def problem(inputs):
        u0 = inputs["x0"][:, None].clone()
        if 6 in inputs["id"].tolist() and t1 == 1.0:
            raise KeyboardInterrupt
        return sciode.ODEProblem(lambda u, p, t: -p * u, u0, (0.0, t1), inputs["k"][:, None].clone())

    torch.manual_seed(0)
    return problem


def test_closure_changing_the_time_grid_is_not_resumed(setup, tmp_path):
    """The same function text, another closure value (t1): the stored chunks are not reused."""
    _, members = setup
    output = tmp_path / "traj.nc"
    with pytest.raises(KeyboardInterrupt):
        sciode.run_batch(make_problem(1.0), members, output, **OPTIONS)
    resumed = sciode.run_batch(make_problem(2.0), members, output, **OPTIONS)
    fresh = sciode.run_batch(make_problem(2.0), members, None, **OPTIONS)
    assert resumed.sizes["time"] == 11 and not np.isnan(resumed["u"].values).any()
    xr.testing.assert_identical(without_timestamps(resumed), without_timestamps(fresh))
    assert_same_file(output, fresh)


def test_a_stored_chunk_that_does_not_fit_discards_the_partial_directory(setup, tmp_path, monkeypatch, capsys):
    script, members = setup
    output = tmp_path / "traj.nc"
    monkeypatch.setenv("RESUME_TEST_INTERRUPT_AT", "16")
    with pytest.raises(KeyboardInterrupt):
        sciode.run_batch(script, members, output, **OPTIONS)
    monkeypatch.delenv("RESUME_TEST_INTERRUPT_AT")
    chunk = tmp_path / ".sciode-partial-traj.nc" / "chunk-000003.nc"
    bad = sciode.io.load(chunk)
    sciode.io.save(bad.assign_coords(time=bad["time"].values * 2), chunk)  # as if from another time grid
    resumed = sciode.run_batch(script, members, output, **{**OPTIONS, "progress": True})
    err = capsys.readouterr().err
    assert "not resuming" in err
    assert "chunk-000003.nc does not fit this run: it was computed on another time grid" in err
    fresh = sciode.run_batch(script, members, None, **OPTIONS)
    xr.testing.assert_identical(without_timestamps(resumed), without_timestamps(fresh))


def test_unchanged_run_resumes_and_matches_an_uninterrupted_one(setup, tmp_path, monkeypatch, capsys):
    script, members = setup
    output = tmp_path / "traj.nc"
    monkeypatch.setenv("RESUME_TEST_INTERRUPT_AT", "16")
    with pytest.raises(KeyboardInterrupt):
        sciode.run_batch(script, members, output, **OPTIONS)
    monkeypatch.delenv("RESUME_TEST_INTERRUPT_AT")
    sciode.run_batch(script, members, output, **{**OPTIONS, "progress": True})
    assert "resuming: 8 of 10 chunks already done" in capsys.readouterr().err
    assert_same_file(output, sciode.run_batch(script, members, None, **OPTIONS))

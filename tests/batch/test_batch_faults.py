"""Fault handling: failing script members are isolated, interrupted runs resume, output appears only when complete."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from batch_helpers import run_cli, without_timestamps

import sciode

SCRIPT = '''
import os
import torch
import sciode


def decay(u, p, t):
    return -p * u


def problem(inputs):
    ids = inputs["id"]
    log = os.environ.get("BATCH_TEST_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{int(ids[0])} {len(ids)}\\n")
    stop = os.environ.get("BATCH_TEST_INTERRUPT_AT")
    if stop is not None and int(stop) in ids.tolist():
        raise KeyboardInterrupt
    if (ids == 7).any():
        raise ValueError("member 7 is cursed")
    u0 = torch.stack([inputs["x0"], 2 * inputs["x0"]], dim=-1)
    return sciode.ODEProblem(decay, u0, (0.0, 1.0), inputs["k"][:, None], state_names=["a", "b"])
'''
N = 23


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "decay_problem.py"
    script.write_text(SCRIPT)
    ds = xr.Dataset({"id": ("member", np.arange(N)), "k": ("member", np.linspace(0.1, 2.0, N)),
                     "x0": ("member", np.linspace(1.0, 3.0, N))})
    ds.to_netcdf(tmp_path / "members.nc")
    return script, tmp_path / "members.nc"


def test_script_error_is_recorded_for_that_member_only(setup):
    script, members = setup
    out = sciode.run_batch(script, members, solver="rk4", dt=0.01, saveat=10, chunk=5, progress=False)
    codes, messages = out["retcode"].values, out["message"].values
    assert codes[7] == sciode.ReturnCode.FAILURE
    assert messages[7] == "script error: ValueError: member 7 is cursed"
    assert np.isnan(out["u"].values[7]).all()
    others = np.delete(np.arange(N), 7)
    assert (codes[others] == sciode.ReturnCode.SUCCESS).all() and (messages[others] == "").all()
    k, x0 = out["k"].values[:, None], out["x0"].values[:, None]
    exact = x0 * np.exp(-k * out["time"].values[None])
    np.testing.assert_allclose(out["u"].sel(state="a").values[others], exact[others], rtol=1e-7)
    np.testing.assert_allclose(out["u"].sel(state="b").values[others], 2 * exact[others], rtol=1e-7)


def test_keyboard_interrupt_then_resume(setup, tmp_path, monkeypatch):
    script, members = setup
    output = tmp_path / "out" / "traj.nc"
    output.parent.mkdir()
    log = tmp_path / "calls.log"
    monkeypatch.setenv("BATCH_TEST_LOG", str(log))
    monkeypatch.setenv("BATCH_TEST_INTERRUPT_AT", "12")  # the third chunk (members 10..14)
    with pytest.raises(KeyboardInterrupt):
        sciode.run_batch(script, members, output, solver="rk4", dt=0.01, saveat=10, chunk=5, progress=False)
    assert not output.exists()
    partial = output.parent / ".sciode-partial-traj.nc"
    assert sorted(p.name for p in partial.glob("chunk-*.nc")) == ["chunk-000000.nc", "chunk-000001.nc"]
    # no temp file left; the (empty, unlocked) lock file stays so waiting runs share its inode
    assert sorted(p.name for p in output.parent.iterdir()) == [".sciode-partial-traj.nc", ".traj.nc.lock"]

    monkeypatch.delenv("BATCH_TEST_INTERRUPT_AT")
    log.write_text("")
    resumed = sciode.run_batch(script, members, output, solver="rk4", dt=0.01, saveat=10, chunk=5, progress=False)
    starts = [int(line.split()[0]) for line in log.read_text().split("\n") if line and line.split()[1] == "5"]
    assert starts == [10, 15]  # chunks 0 and 1 were not solved again (the last chunk has 3 members)
    assert output.exists() and not partial.exists()
    fresh = sciode.run_batch(script, members, None, solver="rk4", dt=0.01, saveat=10, chunk=5, progress=False)
    xr.testing.assert_identical(without_timestamps(resumed), without_timestamps(fresh))
    xr.testing.assert_identical(without_timestamps(sciode.io.load(output)), without_timestamps(fresh))


def test_changed_options_start_over(setup, tmp_path, monkeypatch):
    script, members = setup
    output = tmp_path / "traj.nc"
    monkeypatch.setenv("BATCH_TEST_INTERRUPT_AT", "12")
    with pytest.raises(KeyboardInterrupt):
        sciode.run_batch(script, members, output, solver="rk4", dt=0.01, chunk=5, progress=False)
    monkeypatch.delenv("BATCH_TEST_INTERRUPT_AT")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("BATCH_TEST_LOG", str(log))
    sciode.run_batch(script, members, output, solver="rk4", dt=0.02, chunk=5, progress=False)  # another dt
    starts = [int(line.split()[0]) for line in log.read_text().split("\n") if line and line.split()[1] == "5"]
    assert starts == [0, 5, 10, 15]


def test_cli_interrupted_subprocess_never_leaves_a_partial_output(setup, tmp_path):
    script, members = setup
    output = tmp_path / "traj.nc"
    args = ("run", str(script), "--input", str(members), "--output", str(output), "--solver", "rk4",
            "--dt", "0.01", "--chunk", "5")
    env = dict(os.environ, BATCH_TEST_INTERRUPT_AT="17")
    first = run_cli(*args, env=env)
    assert first.returncode == 130 and "interrupted" in first.stderr and "resume" in first.stderr
    assert not output.exists()

    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # whenever a file is at the output path, it must be complete
        while not stop.is_set():
            if output.exists():
                with netCDF4.Dataset(output) as nc:
                    seen.append(len(nc.dimensions["member"]))
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    second = run_cli(*args)
    stop.set()
    watcher.join()
    assert second.returncode == 0, second.stderr
    assert "resuming: 3 of 5 chunks already done" in second.stderr
    assert seen == [N]

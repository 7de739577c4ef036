"""The output of a batch run: attributes kept, a lock between runs, leftovers cleaned, umask, full disks, signals."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from batch_helpers import REPO, lv_members

import sciode
import sciode.cli

SCRIPT = '''
import os
import time
import torch
import sciode


def decay(u, p, t):
    return -p * u


def problem(inputs):
    log = os.environ.get("OUTPUT_TEST_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{len(inputs['k'])}\\n")
    gate = os.environ.get("OUTPUT_TEST_GATE")
    if gate and float(inputs["k"][0]) > 0.1:  # every chunk after the first waits until the test opens the gate
        while not os.path.exists(gate):
            time.sleep(0.02)
    u0 = torch.stack([inputs["x0"], 2 * inputs["x0"]], dim=-1)
    return sciode.ODEProblem(decay, u0, (0.0, 1.0), inputs["k"][:, None], state_names=["a", "b"])
'''
N = 12


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "decay_problem.py"
    script.write_text(SCRIPT)
    ds = xr.Dataset({"k": ("member", np.linspace(0.1, 2.0, N), {"units": "s-1"}),
                     "x0": ("member", np.linspace(1.0, 3.0, N))})
    ds.to_netcdf(tmp_path / "members.nc")
    return script, tmp_path / "members.nc"


def cli_args(script: Path, members: Path, output: Path, *extra: str) -> tuple[str, ...]:
    return ("run", str(script), "--input", str(members), "--output", str(output), "--solver", "rk4", "--dt", "0.01",
            "--saveat", "10", "--chunk", "3", *extra)


def start_cli(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sciode.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_string_array_attributes_and_retcode_flags_reach_the_output(setup, tmp_path):
    script, members = setup
    inputs = sciode.io.load(members)
    inputs["k"].attrs["flags"] = ["fast", "slow"]
    inputs.to_netcdf(members)  # "flags" is an NC_STRING array attribute
    output = tmp_path / "traj.nc"
    sciode.run_batch(script, members, output, solver="rk4", dt=0.01, saveat=10, chunk=5, progress=False)
    ds = sciode.io.load(output)
    assert ds["k"].attrs["flags"] == ["fast", "slow"] and ds["k"].attrs["units"] == "s-1"
    assert ds["retcode"].attrs["flag_meanings"] == "success max_steps dt_too_small unstable failure terminated"
    np.testing.assert_array_equal(ds["retcode"].attrs["flag_values"], [1, 2, 3, 4, 5, 6])
    assert ds["u"].attrs["long_name"] == "state"


def test_batch_output_and_to_xarray_share_the_dimension_order(setup):
    script, members = setup
    out = sciode.run_batch(script, members, solver="rk4", dt=0.01, saveat=10, progress=False)
    import torch

    prob = sciode.ODEProblem(lambda u, p, t: -u, torch.ones(3, 2), (0.0, 1.0))
    assert out["u"].dims == sciode.solve(prob, "rk4", dt=0.1).to_xarray()["u"].dims == ("member", "time", "state")


def test_an_unwritable_attribute_is_refused_before_solving(setup, tmp_path, monkeypatch):
    script, _ = setup
    log = tmp_path / "calls.log"
    monkeypatch.setenv("OUTPUT_TEST_LOG", str(log))
    ds = xr.Dataset({"k": ("member", np.linspace(0.1, 2.0, N), {"config": {"a": 1}}),
                     "x0": ("member", np.linspace(1.0, 3.0, N))})
    with pytest.raises(sciode.ProblemError, match="attribute 'k.config'"):
        sciode.run_batch(script, ds, tmp_path / "traj.nc", solver="rk4", dt=0.01, chunk=3, progress=False)
    assert log.read_text().split() == ["1"]  # only the preflight member was solved
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "calls.log", "decay_problem.py", "members.nc"]


def test_files_respect_the_umask(setup, tmp_path):
    script, members = setup
    old = os.umask(0o027)
    try:
        sciode.run_batch(script, members, tmp_path / "traj.nc", solver="rk4", dt=0.01, progress=False)
        sciode.io.save(xr.Dataset({"x": ("i", [1.0])}), tmp_path / "plain.nc")
    finally:
        os.umask(old)
    assert (tmp_path / "traj.nc").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "plain.nc").stat().st_mode & 0o777 == 0o640


def test_stale_temporary_files_of_dead_runs_are_removed(setup, tmp_path):
    script, members = setup
    output = tmp_path / "traj.nc"
    partial = tmp_path / ".sciode-partial-traj.nc"
    partial.mkdir()
    stale = [tmp_path / ".traj.nc.k3j2h1.tmp", partial / ".chunk-000001.nc.x8y7.tmp", tmp_path / ".traj.nc.probe.tmp"]
    for path in stale:
        path.write_bytes(b"half a netCDF file")
    keep = tmp_path / ".other.nc.abc.tmp"  # another output's temporary: not ours to remove
    keep.write_bytes(b"")
    sciode.run_batch(script, members, output, solver="rk4", dt=0.01, chunk=3, progress=False)
    assert not any(p.exists() for p in stale) and keep.exists() and output.exists()


def test_a_second_run_on_the_same_output_gets_a_clear_error_and_a_dead_runs_lock_is_no_obstacle(setup, tmp_path,
                                                                                                  capsys):
    script, members = setup
    output = tmp_path / "traj.nc"
    env = dict(os.environ, OUTPUT_TEST_GATE=str(tmp_path / "never"))
    first = start_cli(*cli_args(script, members, output), env=env)
    try:
        wait_for(lambda: any((tmp_path / ".sciode-partial-traj.nc").glob("chunk-*.nc")))
        assert sciode.cli.main(cli_args(script, members, output)) == 2
        assert "sciode run: error: output: another sciode run is writing" in capsys.readouterr().err
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert sciode.cli.main(cli_args(script, members, output)) == 0  # the dead run's lock went with its process
    assert "resuming" in capsys.readouterr().err
    assert sciode.io.load(output).sizes["member"] == N


def test_sigterm_is_handled_like_ctrl_c(setup, tmp_path, capsys):
    script, members = setup
    output = tmp_path / "traj.nc"
    proc = start_cli(*cli_args(script, members, output), env=dict(os.environ, OUTPUT_TEST_GATE=str(tmp_path / "never")))
    try:
        wait_for(lambda: any((tmp_path / ".sciode-partial-traj.nc").glob("chunk-*.nc")))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert "sciode run: terminated (SIGTERM); finished chunks are kept" in err and "resume" in err
    assert "Traceback" not in err
    assert any((tmp_path / ".sciode-partial-traj.nc").glob("chunk-*.nc")) and not output.exists()
    assert sciode.cli.main(cli_args(script, members, output)) == 0
    assert "resuming" in capsys.readouterr().err


def test_a_script_imports_a_module_beside_it(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "decay_rates.py").write_text("def rate(k):\n    return 2 * k\n")
    (folder / "uses_helper.py").write_text(textwrap.dedent('''
        import torch, sciode
        from decay_rates import rate

        def problem(inputs):
            k = rate(inputs["k"])[:, None]
            return sciode.ODEProblem(lambda u, p, t: -p * u, inputs["x0"][:, None], (0.0, 1.0), k)
    '''))
    xr.Dataset({"k": ("member", [1.0, 2.0]), "x0": ("member", [1.0, 1.0])}).to_netcdf(tmp_path / "m.nc")
    monkeypatch.chdir(tmp_path)  # not the script's folder
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert sciode.cli.main(["run", str(folder / "uses_helper.py"), "--input", "m.nc", "--output", "o.nc",
                            "--saveat", "1", "-q"]) == 0
    sys.modules.pop("decay_rates", None)
    np.testing.assert_allclose(sciode.io.load(tmp_path / "o.nc")["u"].values[:, -1, 0], np.exp([-2.0, -4.0]),
                               rtol=1e-5)


def test_sys_exit_and_option_errors_are_attributed(tmp_path, capsys):
    (tmp_path / "lv.py").write_text("import sys\ndef problem(inputs):\n    sys.exit(3)\n")
    xr.Dataset({"k": ("member", [1.0, 2.0])}).to_netcdf(tmp_path / "m.nc")
    assert sciode.cli.main(["run", str(tmp_path / "lv.py"), "--input", str(tmp_path / "m.nc"), "--output",
                            str(tmp_path / "o.nc")]) == 2
    assert "sciode run: error: script lv.py: problem(inputs) called sys.exit(3)" in capsys.readouterr().err
    lv_members(4, blowup=None).to_netcdf(tmp_path / "lv.nc")
    assert sciode.cli.main(["run", str(REPO / "examples" / "lotka_volterra_problem.py"), "--input",
                            str(tmp_path / "lv.nc"), "--output", str(tmp_path / "o.nc"), "--saveat", "0,5,40"]) == 2
    err = capsys.readouterr().err
    assert "sciode run: error: saveat: time 40 lies outside the script's tspan (0, 20)" in err
    assert "script" not in err.split("saveat")[0]


DISK_FULL_DRIVER = '''
import json, os, subprocess, sys
disk, script, small_members, big_members = sys.argv[1:5]
out = os.path.join(disk, "traj.nc")
base = [sys.executable, "-m", "sciode.cli", "run", script, "--output", out, "--solver", "rk4", "--dt", "0.01",
        "--saveat", "100", "-q", "--chunk", "50"]
small = subprocess.run(base + ["--input", small_members], capture_output=True, text=True)
old = open(out, "rb").read() if os.path.exists(out) else b""
big = subprocess.run(base + ["--input", big_members, "--overwrite"], capture_output=True, text=True)
partial = os.path.join(disk, ".sciode-partial-traj.nc")
chunks = sorted(p for p in os.listdir(partial) if p.startswith("chunk-")) if os.path.isdir(partial) else []
same = bool(old) and open(out, "rb").read() == old
print(json.dumps(dict(small=small.returncode, small_err=small.stderr, big=big.returncode, err=big.stderr, same=same,
                      chunks=chunks, listing=sorted(os.listdir(disk)))))
'''


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None or sys.platform != "linux", reason="needs unshare and tmpfs")
def test_a_full_disk_is_named_and_the_old_output_and_chunks_survive(tmp_path):
    """A 400 KB tmpfs (in a user and mount namespace): the big run fills it while storing its chunks."""
    script = tmp_path / "noisy.py"
    script.write_text(textwrap.dedent('''
        import torch, sciode
        def problem(inputs):
            k = inputs["k"]
            u0 = torch.rand(len(k), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(len(k)))
            return sciode.ODEProblem(lambda u, p, t: -p * u + torch.sin(40 * t), u0, (0.0, 1.0), k[:, None])
    '''))
    xr.Dataset({"k": ("member", np.linspace(0.1, 2.0, 5))}).to_netcdf(tmp_path / "small.nc")
    xr.Dataset({"k": ("member", np.linspace(0.1, 2.0, 400))}).to_netcdf(tmp_path / "big.nc")
    driver = tmp_path / "driver.py"
    driver.write_text(DISK_FULL_DRIVER)
    disk = tmp_path / "disk"
    disk.mkdir()
    command = (f"mount -t tmpfs -o size=400k tmpfs {disk} && "
               f"{sys.executable} {driver} {disk} {script} {tmp_path / 'small.nc'} {tmp_path / 'big.nc'}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    if done.returncode != 0 and "mount" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.stdout.strip(), done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["small"] == 0, result["small_err"]
    assert result["big"] == 2, result["err"]
    assert "the device is full" in result["err"] and str(disk) in result["err"] and "Traceback" not in result["err"]
    assert result["same"]  # the old output is untouched
    assert result["chunks"], result  # the chunks finished before the disk filled up are kept

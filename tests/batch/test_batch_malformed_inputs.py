"""Malformed inputs are rejected before any work starts, with a message naming the variable, dim or path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from batch_helpers import LV_SCRIPT, lv_members, run_cli

import sciode


def _write(ds: xr.Dataset, tmp: Path) -> Path:
    path = tmp / "members.nc"
    ds.to_netcdf(path)
    return path


def _good(tmp: Path) -> Path:
    return _write(lv_members(6, blowup=None), tmp)


def _with(tmp: Path, **changes) -> Path:
    ds = lv_members(6, blowup=None)
    for name, value in changes.items():
        if value is None:
            ds = ds.drop_vars(name)
        else:
            ds[name] = value
    return _write(ds, tmp)


def _nan_beta(tmp: Path) -> Path:
    ds = lv_members(6, blowup=None)
    ds["beta"].values[4] = np.nan
    return _write(ds, tmp)


def _text_file(tmp: Path) -> Path:
    path = tmp / "members.nc"
    path.write_text("alpha,beta\n1,2\n")
    return path


def _script(tmp: Path, text: str) -> Path:
    path = tmp / "problem_script.py"
    path.write_text(text)
    return path


CASES = [
    # (id, build(tmp) -> dict of run_batch arguments, message fragment)
    ("input file missing", lambda t: dict(inputs=t / "nope.nc"), r"input: '.*nope\.nc' does not exist"),
    ("input not netCDF", lambda t: dict(inputs=_text_file(t)), r"members\.nc' is not a netCDF file"),
    ("no member dim", lambda t: dict(inputs=_write(lv_members(6, blowup=None).rename(member="run"), t)),
     r"no 'member' dimension; the dims are \['run'\]"),
    ("member not first", lambda t: dict(inputs=_with(t, gamma=(("k", "member"), np.ones((2, 6))))),
     r"input variable 'gamma': dims \('k', 'member'\); 'member' must be the first dim"),
    ("NaN parameter", lambda t: dict(inputs=_nan_beta(t)),
     r"input variable 'beta': contains NaN or inf \(first at member=4\)"),
    ("missing variable", lambda t: dict(inputs=_with(t, gamma=None)),
     r"asked for input variable 'gamma', which the input dataset does not have"),
    ("reserved variable name", lambda t: dict(inputs=_with(t, u=("member", np.ones(6)))),
     r"input variable 'u': the name is taken by the output"),
    ("non-numeric variable", lambda t: dict(inputs=_with(t, tag=("member", np.array(list("abcdef"))))),
     r"input variable 'tag': must be numeric"),
    ("output exists", lambda t: dict(inputs=_good(t), output_path=_text_file_at(t / "traj.nc")),
     r"output: '.*traj\.nc' exists; pass --overwrite"),
    ("output directory missing", lambda t: dict(inputs=_good(t), output_path=t / "no" / "traj.nc"),
     r"output: directory '.*no' does not exist"),
    ("chunk zero", lambda t: dict(inputs=_good(t), chunk=0), r"chunk must be a positive int; got 0"),
    ("unknown solver", lambda t: dict(inputs=_good(t), solver="rk99"),
     r"unknown solver 'rk99' for solver; registered solver names: .*tsit5"),
    ("fixed step without dt", lambda t: dict(inputs=_good(t), solver="rk4"), r"dt: solver 'rk4' takes fixed steps"),
    ("bad saveat", lambda t: dict(inputs=_good(t), saveat=0), r"saveat: give a number of intervals >= 1"),
    ("workers and scheduler", lambda t: dict(inputs=_good(t), workers=2, scheduler="tcp://127.0.0.1:1"),
     r"workers/scheduler: give one of them"),
    ("script missing", lambda t: dict(inputs=_good(t), script=t / "missing.py"),
     r"script: '.*missing\.py' does not exist"),
    ("script without problem", lambda t: dict(inputs=_good(t), script=_script(t, "def problme(inputs):\n    pass\n")),
     r"script problem_script\.py: defines no function problem\(inputs\)"),
    ("script returns wrong u0", lambda t: dict(inputs=_good(t), script=_script(t, WRONG_SHAPE)),
     r"must return u0 of shape \(members, n\) = \(1, n\) for a chunk of 1 members; got \(3,\)"),
    ("a billion members declared", lambda t: dict(inputs=_huge_member_dim(t)),
     r"input .*members\.nc: the variables need 44\.7 GiB in memory \(member=1000000000\), more than the memory "
     r"limit of 8\.0 GiB; raise it with --max-memory"),
    ("output over the memory limit", lambda t: dict(inputs=_good(t), max_memory_gib=1e-5),
     r"max_memory_gib: the inputs and the output of 6 members need about .* more than the limit"),
    ("memory limit not positive", lambda t: dict(inputs=_good(t), max_memory_gib=0),
     r"max_memory_gib must be a positive"),
    ("input named like an output coordinate", lambda t: dict(inputs=_with(t, state_units=("member", np.ones(6)))),
     r"input variable 'state_units': the name is taken by the output"),
    ("input named message", lambda t: dict(inputs=_with(t, message=("member", np.ones(6)))),
     r"input variable 'message': the name is taken by the output"),
    ("saveat outside the script's tspan", lambda t: dict(inputs=_good(t), saveat=[0.0, 10.0, 30.0]),
     r"^saveat: time 30 lies outside the script's tspan \(0, 20\)$"),
    ("saveat not increasing", lambda t: dict(inputs=_good(t), saveat=[0.0, 5.0, 2.0]),
     r"^saveat: the times must be strictly increasing"),
    ("saveat of non-numbers", lambda t: dict(inputs=_good(t), saveat=[0.0, "x"]),
     r"saveat: give a number of intervals"),
    ("rtol negative", lambda t: dict(inputs=_good(t), rtol=-1.0), r"rtol must be a positive finite number; got -1.0"),
    ("dt not finite", lambda t: dict(inputs=_good(t), solver="rk4", dt=float("nan")), r"dt must be a positive finite"),
    ("max_steps zero", lambda t: dict(inputs=_good(t), max_steps=0), r"max_steps must be a positive int; got 0"),
    ("workers zero", lambda t: dict(inputs=_good(t), workers=0), r"workers must be a positive int; got 0"),
    ("scheduler empty", lambda t: dict(inputs=_good(t), scheduler=""), r"scheduler: must be an address"),
    ("output is a directory", lambda t: dict(inputs=_good(t), output_path=t), r"output: '.*' is a directory"),
    ("attribute netCDF cannot store", lambda t: dict(inputs=_unwritable_attribute(t), output_path=t / "o.nc"),
     r"attribute 'alpha.config' = .* cannot be stored in netCDF"),
    ("script exits in problem()", lambda t: dict(inputs=_good(t), script=_script(t, EXITS_IN_PROBLEM)),
     r"^script problem_script\.py: problem\(inputs\) called sys.exit\(3\); a problem script must return a Problem"),
    ("script exits while loaded", lambda t: dict(inputs=_good(t), script=_script(t, EXITS_ON_LOAD)),
     r"script problem_script\.py: called sys.exit\(4\) while being loaded"),
    ("script fails to import", lambda t: dict(inputs=_good(t), script=_script(t, RAISES_ON_LOAD)),
     r"script problem_script\.py: raised while being loaded: ModuleNotFoundError"),
]

def _huge_member_dim(tmp: Path) -> Path:
    """A few KB on disk that declare a billion members (chunked HDF5, nothing written)."""
    import netCDF4

    path = tmp / "members.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("member", 1_000_000_000)
        for name in ("alpha", "beta", "delta", "gamma", "prey0", "predator0"):
            nc.createVariable(name, "f8", ("member",), chunksizes=(1024,))
    return path


def _unwritable_attribute(tmp: Path) -> xr.Dataset:
    ds = lv_members(6, blowup=None)
    ds["alpha"].attrs["config"] = {"source": "a dict"}
    return ds


EXITS_IN_PROBLEM = """
import sys
def problem(inputs):
    sys.exit(3)
"""
EXITS_ON_LOAD = "import sys\nsys.exit(4)\n"
RAISES_ON_LOAD = "import nonexistent_module_for_sciode_tests\n"

WRONG_SHAPE = """
import torch, sciode
def problem(inputs):
    return sciode.ODEProblem(lambda u, p, t: -u, torch.ones(3, dtype=torch.float64), (0.0, 1.0))
"""


def _text_file_at(path: Path) -> Path:
    path.write_text("previous result")
    return path


@pytest.mark.parametrize("build, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_up_front(tmp_path, build, message):
    kwargs = dict(script=LV_SCRIPT, progress=False)
    kwargs.update(build(tmp_path))
    script, inputs = kwargs.pop("script"), kwargs.pop("inputs")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(sciode.ProblemError, match=message):
        sciode.run_batch(script, inputs, **kwargs)
    after = [name for name in sorted(p.name for p in tmp_path.iterdir()) if not name.endswith(".lock")]
    assert after == before  # no partial directory, no output, no temporary file


def test_the_table_is_long_enough():
    assert len(CASES) >= 25


def test_cli_reports_input_errors_with_exit_code_2(tmp_path):
    done = run_cli("run", str(LV_SCRIPT), "--input", str(_nan_beta(tmp_path)), "--output", str(tmp_path / "o.nc"))
    assert done.returncode == 2
    assert "sciode run: error: input variable 'beta': contains NaN" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o.nc").exists()

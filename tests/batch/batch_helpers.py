"""Helpers of the batch-run tests: a Lotka-Volterra members dataset, the example problem script, the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

REPO = Path(__file__).resolve().parents[2]
LV_SCRIPT = REPO / "examples" / "lotka_volterra_problem.py"
#: the member whose parameters make the populations blow up in finite time
BLOWUP = 17


def lv_members(n: int, seed: int = 0, blowup: int | None = BLOWUP) -> xr.Dataset:
    """n Lotka-Volterra parameter sets and initial states on dim "member" (labels "lv-0000", ...)."""
    rng = np.random.default_rng(seed)
    ds = xr.Dataset(
        {name: ("member", rng.uniform(lo, hi, n), {"long_name": name})
         for name, lo, hi in (("alpha", 0.8, 1.6), ("beta", 0.3, 0.6), ("delta", 0.2, 0.4), ("gamma", 0.8, 1.2),
                              ("prey0", 5.0, 15.0), ("predator0", 2.0, 8.0))},
        coords={"member": [f"lv-{i:04d}" for i in range(n)]},
    )
    if blowup is not None and blowup < n:
        # both populations feed each other: x' = x + 2xy, y' = xy - y blows up in finite time
        for name, value in (("alpha", 1.0), ("beta", -2.0), ("delta", 1.0), ("gamma", 1.0)):
            ds[name].values[blowup] = value
    return ds


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sciode.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def without_timestamps(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    for key in ("created", "history"):
        ds.attrs.pop(key, None)
    return ds

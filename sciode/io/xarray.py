"""Solution -> xarray.Dataset with labelled dims, per-member retcodes and provenance attrs."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..solution import ReturnCode


def member_dims(batch_ndim: int) -> tuple[str, ...]:
    """Names of the member dims: ``member`` for one batch dim, ``member_0, member_1, ...`` for more."""
    if batch_ndim == 1:
        return ("member",)
    return tuple(f"member_{i}" for i in range(batch_ndim))


def solution_to_dataset(sol: Any) -> xr.Dataset:
    """Dataset with ``u`` on ("time", *member dims, "state") and ``retcode`` per member.

    Tensors are detached (gradients do not flow into the Dataset).
    """
    problem = sol.problem
    batch_ndim = sol.u.ndim - 2
    mdims = member_dims(batch_ndim)
    u = sol.u.detach().cpu().numpy()
    codes = sol.retcodes.detach().cpu().numpy().astype(np.int8)
    ds = xr.Dataset(
        {
            "u": (("time", *mdims, "state"), u),
            "retcode": (mdims, codes, {
                "flag_values": np.array([c.value for c in ReturnCode], dtype=np.int8),
                "flag_meanings": " ".join(c.name.lower() for c in ReturnCode),
                "long_name": "solver return code",
            }),
        },
        coords={"time": sol.t.detach().cpu().numpy(), "state": list(problem.names())},
    )
    solver = getattr(sol.solver, "name", str(sol.solver))
    sens = getattr(sol.sensealg, "name", "none" if sol.sensealg is None else str(sol.sensealg))
    ds.attrs.update(
        solver=solver, sensealg=sens, sciode_version=__version__, message=sol.message,
        rtol=float(sol.options.get("rtol", np.nan)), atol=float(sol.options.get("atol", np.nan)),
        stats=json.dumps({k: int(v) for k, v in sol.stats.items()}),
    )
    if problem.name:
        ds.attrs["title"] = problem.name
    if problem.time_units:
        ds["time"].attrs["units"] = problem.time_units
    return ds

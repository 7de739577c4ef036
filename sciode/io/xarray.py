"""Solution -> xarray.Dataset: labelled dims, per-member retcodes, CF metadata and provenance.

The Dataset is a detached, CPU, NumPy copy of the solve, so it can be sliced by
name, plotted and archived (``sciode.io.save``) without holding the autograd graph.
"""
from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._version import __version__
from ..errors import ProblemError
from ..solution import ReturnCode

__all__ = ["member_dims", "retcode_attrs", "solution_to_dataset", "STAT_NAMES"]

#: Solution.stats keys, written as ``stats_<name>`` attributes.
STAT_NAMES = ("nfe", "njac", "nlinsolve", "nsteps", "naccepted", "nrejected")


def member_dims(batch_ndim: int) -> tuple[str, ...]:
    """Names of the member dims: ``member`` for one batch dim, ``member_0, member_1, ...`` for more."""
    if batch_ndim == 1:
        return ("member",)
    return tuple(f"member_{i}" for i in range(batch_ndim))


def retcode_attrs() -> dict[str, Any]:
    """CF flag attributes that make the int8 ``retcode`` variable self-describing."""
    return {
        "long_name": "solver return code",
        "flag_values": np.array([c.value for c in ReturnCode], dtype=np.int8),
        "flag_meanings": " ".join(c.name.lower() for c in ReturnCode),
    }


def _name(obj: Any, none: str) -> str:
    if obj is None:
        return none
    return str(getattr(obj, "name", None) or type(obj).__name__)


def _member_coords(members: Any, mdims: tuple[str, ...], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Normalise ``members``: a sequence (one member dim) or a mapping dim -> labels."""
    if members is None:
        return {}
    if not isinstance(members, Mapping):
        if len(mdims) != 1:
            raise ProblemError(f"members: give a mapping dim -> labels for a batch with dims {mdims}; got a sequence")
        members = {mdims[0]: members}
    out = {}
    for dim, labels in members.items():
        if dim not in mdims:
            raise ProblemError(f"members: unknown member dim {dim!r}; the batch has dims {mdims}")
        values = np.asarray(labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels)
        size = shape[mdims.index(dim)]
        if values.ndim != 1 or values.shape[0] != size:
            raise ProblemError(f"members[{dim!r}] must hold {size} labels (one per member); got shape {values.shape}")
        out[dim] = values
    return out


def _values(sol: Any, times: Any) -> tuple[np.ndarray, np.ndarray]:
    """(t, u) as NumPy: the saved points, or dense output on the grid ``times``."""
    if times is None:
        t, u = sol.t, sol.u
    else:
        if not sol.has_dense_output:
            raise ProblemError("times: this Solution has no dense output; solve with saveat=None (or dense=True) "
                               "and a solver with an interpolant, or call to_xarray() without times")
        t = torch.as_tensor(times, dtype=sol.u.dtype).reshape(-1)
        if t.numel() == 0:
            raise ProblemError("times must hold at least one time")
        u = sol(t)
    # copies: the Dataset must not share memory with the Solution's tensors
    return t.detach().cpu().numpy().copy(), u.detach().cpu().numpy().copy()


def _cf_state_attrs(problem: Any) -> dict[str, Any]:
    """The Problem's per-state CF metadata: key -> one string per state."""
    attrs: dict[str, Any] = {}
    for key, field in (("units", "state_units"), ("long_name", "state_long_names"),
                       ("standard_name", "state_standard_names")):
        values = getattr(problem, field, None)
        if values:
            attrs[key] = tuple(values)
    return attrs


def _tolerance_attr(value: Any) -> Any:
    """A tolerance as a netCDF attribute: a float, or one float per state component."""
    if isinstance(value, torch.Tensor):
        return float(value) if value.numel() == 1 else value.detach().cpu().numpy().astype(np.float64)
    return float(value)


def _event_variables(sol: Any, mdims: tuple[str, ...]) -> dict[str, Any]:
    """Per event NAME: ``event_NAME_t`` and ``event_NAME_u`` over (*members, NAME_occurrence[, state]),
    NaN past each member's ``event_NAME_count``."""
    out: dict[str, Any] = {}
    for name, rec in (getattr(sol, "events", None) or {}).items():
        occ = f"{name}_occurrence"
        t = rec.t.detach().cpu().numpy()
        u = rec.u.detach().cpu().numpy()
        out[f"event_{name}_t"] = ((*mdims, occ), np.moveaxis(t, 0, -1),
                                  {"long_name": f"time of each occurrence of event {name!r}"})
        out[f"event_{name}_u"] = ((*mdims, occ, "state"), np.moveaxis(u, 0, -2),
                                  {"long_name": f"state at each occurrence of event {name!r}"})
        out[f"event_{name}_count"] = (mdims, rec.count.detach().cpu().numpy().astype(np.int64),
                                      {"long_name": f"number of occurrences of event {name!r}"})
    return out


def solution_to_dataset(sol: Any, *, times: Any = None, members: Any = None,
                        attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """A labelled copy of ``sol`` as an ``xarray.Dataset``.

    ``u`` is on dims ``(*member dims, "time", "state")`` (member dims are
    ``sol.member_dims`` when the solver named them, else ``member`` for a 1-D batch,
    ``member_0, member_1, ...`` for more, none for a single system);
    coords ``time`` and ``state`` (the Problem's ``state_names``); ``retcode`` is a CF
    flag variable per member; per-member stats (``naccepted``, ``nrejected``) are
    variables when the solve kept them, totals are ``stats_*`` attributes.
    ``times``: evaluate dense output on this grid instead of the saved points.
    ``members``: labels for the member dims (a sequence, or a mapping dim -> labels).
    ``attrs``: extra global attributes. The copy is detached: gradients do not flow
    into the Dataset, and editing it never changes the Solution.

    Members come first, as in the batch-run output, the input datasets (``member``
    leading) and CF's advice to put other dims left of time: one member's
    trajectory is then contiguous in memory and on disk (``ds.u[i]`` is member i).
    """
    problem = sol.problem
    batch_ndim = sol.u.ndim - 2
    named = tuple(getattr(sol, "member_dims", None) or ())  # e.g. ("sample",) for SDE ensembles
    mdims = named if len(named) == batch_ndim else member_dims(batch_ndim) if batch_ndim else ()
    t, u = _values(sol, times)
    shape = tuple(u.shape[1:-1])
    names = list(problem.names())
    coords: dict[str, Any] = {"time": t, "state": np.array(names)}
    coords.update(_member_coords(members, mdims, shape))
    codes = sol.retcodes.detach().cpu().numpy().astype(np.int8, copy=True).reshape(shape)
    data: dict[str, Any] = {
        "u": ((*mdims, "time", "state"), np.moveaxis(u, 0, -2)),  # member-major: see solution_to_dataset
        "retcode": (mdims, codes, retcode_attrs()),
    }
    for key, value in (getattr(sol, "member_stats", None) or {}).items():
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if array.shape == shape:
            data[key] = (mdims, array.astype(np.int64), {"long_name": f"{key} (this member)"})
    data.update(_event_variables(sol, mdims))
    ds = xr.Dataset(data, coords=coords)

    ds["u"].attrs["long_name"] = "state"
    for key, values in _cf_state_attrs(problem).items():
        # per-state text is an auxiliary coordinate along "state" (netCDF attributes cannot hold string
        # arrays); a value every state shares is also the CF attribute of ``u`` itself
        ds = ds.assign_coords({f"state_{key}": ("state", np.array(values))})
        if len(set(values)) == 1:
            ds["u"].attrs[key] = values[0]
    ds["time"].attrs["long_name"] = "time"
    ds["time"].attrs["standard_name"] = "time"
    if getattr(problem, "time_units", None):
        ds["time"].attrs["units"] = problem.time_units

    options = sol.options
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    ds.attrs.update(
        Conventions="CF-1.8",
        title=problem.name or "sciode solution",
        source=f"sciode {__version__}",
        history=f"{now} created by sciode {__version__}",
        sciode_version=__version__,
        created=now,
        solver=_name(sol.solver, "unknown"),
        sensealg=_name(sol.sensealg, "none"),
        rtol=_tolerance_attr(options.get("rtol", math.nan)),
        atol=_tolerance_attr(options.get("atol", math.nan)),
        retcode=sol.retcode.name,
        message=sol.message,
    )
    if options.get("stepping"):
        ds.attrs["stepping"] = str(options["stepping"])
    if options.get("dt") is not None:
        ds.attrs["dt"] = float(options["dt"])
    if times is not None:
        ds.attrs["time_grid"] = "dense output"
    for key, value in sol.stats.items():
        ds.attrs[f"stats_{key}"] = int(value)
    if attrs:
        ds.attrs.update(attrs)
    return ds

"""Quick looks at labelled trajectories: time series per state, or a phase portrait.

Works on any Dataset with ``u`` on ``time``, ``state`` and at most one member dim
(``Solution.to_xarray()`` or a ``sciode run`` output). Members whose retcode is
not SUCCESS are drawn dashed and marked "failed" in the legend.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .errors import ProblemError

__all__ = ["plot_dataset", "select_members"]

MAX_DEFAULT_MEMBERS = 10


def _member_dim(u: xr.DataArray) -> str | None:
    extra = [d for d in u.dims if d not in ("time", "state")]
    if len(extra) > 1:
        raise ProblemError(f"plot: u has member dims {extra}; select down to one member dim first")
    return extra[0] if extra else None


def select_members(ds: xr.Dataset, members: Sequence[Any] | None, dim: str) -> list[int]:
    """Positions of ``members`` (labels of the member coord, or integer positions); default the first few."""
    size = ds.sizes[dim]
    if not members:
        return list(range(min(size, MAX_DEFAULT_MEMBERS)))
    labels = [str(v) for v in ds[dim].values] if dim in ds.coords else None
    out = []
    for m in members:
        if labels is not None and str(m) in labels:
            out.append(labels.index(str(m)))
        elif isinstance(m, (int, np.integer)) or (isinstance(m, str) and m.lstrip("-").isdigit() and labels is None):
            i = int(m)
            if not -size <= i < size:
                raise ProblemError(f"members: position {i} is out of range for {size} members")
            out.append(i % size)
        else:
            raise ProblemError(f"members: {m!r} is not a label of the {dim!r} coordinate")
    return out


def _state_label(ds: xr.Dataset, name: str) -> str:
    units = None
    if "state_units" in ds.coords:
        units = str(ds["state_units"].sel(state=name).values)
    elif "units" in ds["u"].attrs:
        units = ds["u"].attrs["units"]
    return f"{name} [{units}]" if units else name


def plot_dataset(ds: xr.Dataset, *, members: Sequence[Any] | None = None, phase: Sequence[str] | None = None,
                 states: Sequence[str] | None = None, output: str | os.PathLike[str] | None = None) -> Any:
    """Draw trajectories (one panel per state) or, with ``phase=(x, y)``, a phase portrait.

    ``members``: labels or positions along the member dim (default: the first 10).
    ``states``: which states to draw (default all). ``output``: also write the figure
    (PNG, SVG, PDF by extension). Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if "u" not in ds.data_vars:
        raise ProblemError(f"plot: the dataset has no variable 'u'; it has {sorted(map(str, ds.data_vars))}")
    u = ds["u"]
    names = [str(s) for s in ds["state"].values]
    for s in list(phase or []) + list(states or []):
        if s not in names:
            raise ProblemError(f"plot: unknown state {s!r}; the states are {names}")
    if phase is not None and len(phase) != 2:
        raise ProblemError(f"phase must name two states (x, y); got {list(phase)}")
    dim = _member_dim(u)
    picks = select_members(ds, members, dim) if dim else [None]
    codes = ds["retcode"].values if "retcode" in ds and dim in ds["retcode"].dims else None
    t = ds["time"].values
    if phase is None:
        shown = list(states) if states else names
        fig, axes = plt.subplots(len(shown), 1, sharex=True, figsize=(7, 2.2 * len(shown) + 0.6), squeeze=False)
        axes = axes[:, 0]
    else:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        axes = [ax]
    for i in picks:
        member = u if i is None else u.isel({dim: i})
        failed = codes is not None and int(codes[i]) != 1
        label = None if i is None else f"{dim} {ds[dim].values[i]}" + (" (failed)" if failed else "")
        style = "--" if failed else "-"
        if phase is None:
            for ax, s in zip(axes, shown):
                ax.plot(t, member.sel(state=s).values, style, lw=1, label=label)
        else:
            axes[0].plot(member.sel(state=phase[0]).values, member.sel(state=phase[1]).values, style, lw=1, label=label)
    if phase is None:
        for ax, s in zip(axes, shown):
            ax.set_ylabel(_state_label(ds, s))
        units = ds["time"].attrs.get("units")
        axes[-1].set_xlabel(f"time [{units}]" if units else "time")
    else:
        axes[0].set_xlabel(_state_label(ds, phase[0]))
        axes[0].set_ylabel(_state_label(ds, phase[1]))
    if dim and len(picks) <= MAX_DEFAULT_MEMBERS:
        axes[0].legend(fontsize="small", loc="best")
    fig.suptitle(str(ds.attrs.get("title", "sciode")))
    fig.tight_layout()
    if output is not None:
        fig.savefig(output, dpi=120)
    return fig

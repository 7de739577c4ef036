"""The finished chunks joined into the output dataset, with every variable's attributes kept."""
from __future__ import annotations

from typing import Any

import xarray as xr

from ..errors import ProblemError
from ..solution import ReturnCode
from .chunk import join_members
from .inputs import MEMBER, Inputs

__all__ = ["assemble", "check_input_names"]


def check_input_names(inputs: Inputs, reference: xr.Dataset) -> None:
    """An input variable may not take the name of anything the output holds itself (``u``, ``state_units``, ...)."""
    taken = {str(name) for name in reference.variables} | {"message"}
    for name in inputs.dataset.data_vars:
        if str(name) in taken:
            raise ProblemError(f"input variable {str(name)!r}: the name is taken by the output "
                               f"({', '.join(sorted(taken))}); rename it")


def assemble(parts: list[xr.Dataset], inputs: Inputs, reference: xr.Dataset, extra: dict[str, Any]) -> xr.Dataset:
    """Chunks (in member order) plus member labels, state coords, input variables and run attributes."""
    out = join_members(parts)
    stats = dict(out.attrs)
    member_attrs = dict(inputs.dataset[MEMBER].attrs) if MEMBER in inputs.dataset.coords else {}
    out = out.assign_coords(member=(MEMBER, inputs.members, member_attrs))
    out = out.assign_coords({k: v for k, v in reference.coords.items() if k.startswith("state_")})
    for name in ("time", "u", "retcode"):
        out[name].attrs.update(reference[name].attrs)
    for name, var in inputs.dataset.data_vars.items():
        out[name] = xr.Variable(var.dims, var.values, dict(var.attrs))
    attrs = {k: v for k, v in reference.attrs.items() if not k.startswith("stats_") and k not in ("retcode", "message")}
    failed = int((out["retcode"].values != ReturnCode.SUCCESS).sum())
    attrs.update(stats)
    attrs.update(extra, members=inputs.size, failed_members=failed,
                 retcode="SUCCESS" if failed == 0 else f"{failed} of {inputs.size} members failed")
    out.attrs = attrs
    return out

"""Dataset -> tensors: read u0, parameters and observations by variable name.

The inverse direction of ``to_xarray``: fitting scripts and batch runs keep their
inputs in netCDF and need them as tensors with the member dim leading.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from ..errors import ProblemError

__all__ = ["read_tensors", "read_state", "read_observations"]


def _dataset(source: xr.Dataset | str | os.PathLike[str]) -> xr.Dataset:
    if isinstance(source, xr.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        from .netcdf import load

        return load(source)
    raise ProblemError(f"expected an xarray.Dataset or a path to a netCDF file; got {type(source).__name__}")


def _variable(ds: xr.Dataset, name: str) -> xr.DataArray:
    if name not in ds.variables:
        have = sorted(str(v) for v in ds.data_vars)
        raise ProblemError(f"variable {name!r} is not in the dataset; it has: {have}")
    return ds[name]


def _tensor(array: xr.DataArray, name: str, dtype: torch.dtype | None) -> torch.Tensor:
    values = np.asarray(array.values)
    if values.dtype.kind not in "biuf":
        raise ProblemError(f"variable {name!r} must be numeric; it has dtype {values.dtype}")
    tensor = torch.from_numpy(np.array(values, copy=True, order="C"))  # writable, owned by the tensor
    return tensor if dtype is None else tensor.to(dtype)


def read_tensors(source: xr.Dataset | str | os.PathLike[str], names: Sequence[str] | None = None, *,
                 dtype: torch.dtype | None = None, member_dim: str = "member") -> dict[str, torch.Tensor]:
    """Variables by name as tensors (all data variables when ``names`` is None).

    Variables on ``member_dim`` get it moved to the front, so ``out[name][i]`` is
    member ``i``. The NumPy dtype is kept unless ``dtype`` is given.
    """
    ds = _dataset(source)
    names = [str(v) for v in ds.data_vars] if names is None else list(names)
    out = {}
    for name in names:
        array = _variable(ds, name)
        if member_dim in array.dims:
            array = array.transpose(member_dim, ...)
        out[name] = _tensor(array, name, dtype)
    return out


def read_state(source: xr.Dataset | str | os.PathLike[str], variables: str | Sequence[str], *,
               dtype: torch.dtype | None = None, member_dim: str = "member") -> torch.Tensor:
    """An initial state of shape ``(*members, n)``.

    ``variables`` is either one variable whose last dim is the state (e.g.
    ``u0(member, state)``) or a list of per-state variables stacked along a new
    last dim (e.g. ``["x0", "y0"]`` -> ``(member, 2)``).
    """
    ds = _dataset(source)
    if isinstance(variables, str):
        return read_tensors(ds, [variables], dtype=dtype, member_dim=member_dim)[variables]
    if not variables:
        raise ProblemError("variables must name at least one state variable")
    parts = read_tensors(ds, list(variables), dtype=dtype, member_dim=member_dim)
    shapes = {name: tuple(t.shape) for name, t in parts.items()}
    if len(set(shapes.values())) != 1:
        raise ProblemError(f"state variables must share one shape to be stacked; got {shapes}")
    return torch.stack([parts[name] for name in variables], dim=-1)


def read_observations(source: xr.Dataset | str | os.PathLike[str], variable: str = "u", *, time: str = "time",
                      dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t, y)`` for fitting: the times (1-D) and the observations with ``time`` leading.

    NaNs (missing observations) are kept: mask them in the loss with ``torch.isnan``.
    """
    ds = _dataset(source)
    array = _variable(ds, variable)
    if time not in array.dims:
        raise ProblemError(f"variable {variable!r} has no {time!r} dim; its dims are {array.dims}")
    array = array.transpose(time, ...)
    t = _tensor(ds[time], time, dtype)
    return t, _tensor(array, variable, dtype)

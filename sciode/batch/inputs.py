"""The members dataset of a batch run: opened lazily, checked, and only then loaded.

Dims, dtypes and the memory the inputs need are checked against a budget before a
single value is read, so a small file that declares a billion members fails in a
second with a message instead of a ``MemoryError``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import ProblemError
from .errors import MissingInput

__all__ = ["Inputs", "load_inputs", "tensors", "format_bytes", "MEMBER", "RESERVED_DIMS"]

MEMBER = "member"
#: Dims the output dataset uses itself; input variables may not have them.
RESERVED_DIMS = ("time", "state")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


class _InputDict(dict):
    def __missing__(self, key: str) -> Any:
        raise MissingInput(f"the problem script asked for input variable {key!r}, which the input dataset "
                           f"does not have; it has: {sorted(self)}")


@dataclasses.dataclass
class Inputs:
    """The members dataset, validated: per-member arrays (member dim first) and shared arrays."""

    dataset: xr.Dataset
    members: np.ndarray  # the member coordinate (labels)
    per_member: dict[str, np.ndarray]
    shared: dict[str, np.ndarray]
    source: str
    nbytes: int

    @property
    def size(self) -> int:
        return int(self.members.shape[0])

    def chunk(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The per-member arrays of members start..stop-1."""
        return {k: v[start:stop] for k, v in self.per_member.items()}

    def head(self, n: int) -> Inputs:
        """The first ``n`` members alone (for a test write of the output's layout)."""
        return Inputs(self.dataset.isel({MEMBER: slice(0, n)}), self.members[:n], self.chunk(0, n), self.shared,
                      self.source, self.nbytes)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for name, values in sorted(self.per_member.items()) + sorted(self.shared.items()) + [("member", self.members)]:
            h.update(name.encode())
            h.update(str(values.dtype).encode() + repr(values.shape).encode())
            h.update(np.ascontiguousarray(values).tobytes() if values.dtype.kind not in "UO"
                     else "\0".join(map(str, values.tolist())).encode())
        return h.hexdigest()


def _open(source: xr.Dataset | str | os.PathLike[str]) -> tuple[xr.Dataset, str]:
    if isinstance(source, xr.Dataset):
        return source, "<dataset>"
    if not isinstance(source, (str, os.PathLike)):
        raise ProblemError(f"input: expected a path to a netCDF file or an xarray.Dataset; got {type(source).__name__}")
    from ..io.netcdf import check_netcdf

    path = check_netcdf(source, "input")
    try:
        return xr.open_dataset(path, engine="netcdf4", decode_timedelta=False), str(source)  # lazy: nothing read yet
    except (OSError, ValueError, RuntimeError) as exc:
        raise ProblemError(f"input: cannot read {str(source)!r} as netCDF: {exc}") from exc


def _check_layout(ds: xr.Dataset, name: str) -> None:
    """Dims and dtypes, from the metadata alone."""
    if MEMBER not in ds.dims:
        raise ProblemError(f"input {name}: no {MEMBER!r} dimension; the dims are {sorted(map(str, ds.dims))} "
                           f"(each input variable needs a leading {MEMBER!r} dim)")
    if ds.sizes[MEMBER] == 0:
        raise ProblemError(f"input {name}: the {MEMBER!r} dimension is empty")
    if not ds.data_vars:
        raise ProblemError(f"input {name}: no data variables")
    for var_name, var in ds.data_vars.items():
        vname = str(var_name)
        for dim in var.dims:
            if dim in RESERVED_DIMS:
                raise ProblemError(f"input variable {vname!r}: dimension {dim!r} is reserved for the output; rename it")
        if var.dtype.kind not in "biuf":
            raise ProblemError(f"input variable {vname!r}: must be numeric; has dtype {var.dtype}")
        if MEMBER in var.dims and var.dims[0] != MEMBER:
            raise ProblemError(f"input variable {vname!r}: dims {var.dims}; {MEMBER!r} must be the first dim")
    if not any(MEMBER in var.dims for var in ds.data_vars.values()):
        raise ProblemError(f"input {name}: no variable has the {MEMBER!r} dim")


def _check_memory(ds: xr.Dataset, name: str, budget: int) -> int:
    """The bytes the loaded dataset will take; refuse before loading when that exceeds ``budget``."""
    need = sum(int(var.size) * var.dtype.itemsize for var in ds.variables.values())
    if need > budget:
        dims = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
        raise ProblemError(f"input {name}: the variables need {format_bytes(need)} in memory ({dims}), more than "
                           f"the memory limit of {format_bytes(budget)}; raise it with --max-memory GIB "
                           "(max_memory_gib=) if this machine has the memory, or split the members into several files")
    return need


def load_inputs(source: xr.Dataset | str | os.PathLike[str], budget: int) -> Inputs:
    """Open, check and load the members dataset (``budget``: bytes the inputs may take in memory)."""
    ds, name = _open(source)
    try:
        _check_layout(ds, name)
        need = _check_memory(ds, name, budget)
        ds = ds.load()
    finally:
        if ds is not source:
            ds.close()
    per_member, shared = {}, {}
    for var_name, var in ds.data_vars.items():
        vname = str(var_name)
        values = np.asarray(var.values)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0]
            where = ", ".join(f"{d}={i}" for d, i in zip(var.dims, bad))
            raise ProblemError(f"input variable {vname!r}: contains NaN or inf (first at {where})")
        (per_member if MEMBER in var.dims else shared)[vname] = np.ascontiguousarray(values)
    members = np.asarray(ds[MEMBER].values) if MEMBER in ds.coords else np.arange(ds.sizes[MEMBER])
    if len(set(members.tolist())) != members.shape[0]:
        raise ProblemError(f"input {name}: the {MEMBER!r} coordinate has duplicate labels")
    return Inputs(ds, members, per_member, shared, name, need)


def tensors(per_member: Mapping[str, np.ndarray], shared: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The dict handed to ``problem(inputs)``: tensors (dtype kept), and a clear error for a missing key."""
    arrays = {**shared, **per_member}
    return _InputDict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()})

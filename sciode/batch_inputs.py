"""Batch-run inputs: the members dataset, the problem script and the run options, checked up front.

Everything here runs before any member is solved, so a malformed input fails in
a second with a message naming the variable, dimension or path at fault.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import os
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .errors import ProblemError

__all__ = ["BatchOptions", "Inputs", "ProblemScript", "MissingInput", "RunError", "load_inputs", "OUTPUT_NAMES"]

MEMBER = "member"
#: Names the output dataset uses itself; input variables may not take them.
OUTPUT_NAMES = ("u", "retcode", "message", "naccepted", "nrejected", "time", "state")


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How every chunk is solved (picklable: it travels to dask workers)."""

    solver: str = "tsit5"
    saveat: Any = 100
    dt: float | None = None
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 100_000
    stepping: str = "per_member"

    def solve_kwargs(self) -> dict[str, Any]:
        return dict(saveat=self.saveat, dt=self.dt, rtol=self.rtol, atol=self.atol, max_steps=self.max_steps,
                    stepping=self.stepping)

    def fingerprint(self) -> str:
        saveat = list(self.saveat) if isinstance(self.saveat, (list, tuple, np.ndarray)) else self.saveat
        return repr((self.solver, saveat, self.dt, self.rtol, self.atol, self.max_steps, self.stepping))


def make_options(solver: str, saveat: Any, dt: float | None, rtol: float, atol: float, max_steps: int) -> BatchOptions:
    """Validate the solve options against the registry: unknown solver, bad saveat/dt/tolerances."""
    from .registry import solvers

    available = solvers()
    if not isinstance(solver, str) or solver not in available:
        raise ProblemError(f"solver: {solver!r} is not a registered solver; available: {sorted(available)}")
    cls = available[solver]
    if isinstance(saveat, bool) or not (isinstance(saveat, int) and saveat >= 1
                                        or isinstance(saveat, (list, tuple)) and len(saveat) > 0):
        raise ProblemError(f"saveat: give a number of intervals >= 1 or a list of times; got {saveat!r}")
    if isinstance(saveat, (list, tuple)):
        saveat = tuple(float(x) for x in saveat)
    for name, value in (("rtol", rtol), ("atol", atol)) + ((("dt", dt),) if dt is not None else ()):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ProblemError(f"{name}: must be a positive finite number; got {value!r}")
    if not cls.adaptive and dt is None:
        raise ProblemError(f"dt: solver {solver!r} takes fixed steps; give --dt / dt=")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ProblemError(f"max_steps: must be a positive int; got {max_steps!r}")
    stepping = "per_member" if cls.adaptive else "shared"
    return BatchOptions(solver, saveat, None if dt is None else float(dt), float(rtol), float(atol), max_steps, stepping)


class RunError(ProblemError):
    """A fault of the run as a whole (not of some members): it stops the batch instead of being recorded."""


class MissingInput(RunError, KeyError):
    """The problem script asked for an input variable the dataset does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


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

    @property
    def size(self) -> int:
        return int(self.members.shape[0])

    def chunk(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """The per-member arrays of members start..stop-1."""
        return {k: v[start:stop] for k, v in self.per_member.items()}

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for name, values in sorted(self.per_member.items()) + sorted(self.shared.items()) + [("member", self.members)]:
            h.update(name.encode())
            h.update(str(values.dtype).encode() + repr(values.shape).encode())
            h.update(np.ascontiguousarray(values).tobytes() if values.dtype.kind != "U" else "\0".join(values).encode())
        return h.hexdigest()


def load_inputs(source: xr.Dataset | str | os.PathLike[str]) -> Inputs:
    """Read and check the members dataset: a ``member`` dim, numeric finite variables with member first."""
    if isinstance(source, xr.Dataset):
        ds, name = source, "<dataset>"
    elif isinstance(source, (str, os.PathLike)):
        from .io.netcdf import check_netcdf, load

        ds, name = load(check_netcdf(source, "input")), str(source)
    else:
        raise ProblemError(f"input: expected a path to a netCDF file or an xarray.Dataset; got {type(source).__name__}")
    if MEMBER not in ds.dims:
        raise ProblemError(f"input {name}: no {MEMBER!r} dimension; the dims are {sorted(map(str, ds.dims))} "
                           f"(each input variable needs a leading {MEMBER!r} dim)")
    if ds.sizes[MEMBER] == 0:
        raise ProblemError(f"input {name}: the {MEMBER!r} dimension is empty")
    if not ds.data_vars:
        raise ProblemError(f"input {name}: no data variables")
    per_member, shared = {}, {}
    for var_name, var in ds.data_vars.items():
        vname = str(var_name)
        if vname in OUTPUT_NAMES:
            raise ProblemError(f"input variable {vname!r}: the name is taken by the output ({', '.join(OUTPUT_NAMES)}); rename it")
        for dim in var.dims:
            if dim in ("time", "state"):
                raise ProblemError(f"input variable {vname!r}: dimension {dim!r} is reserved for the output; rename it")
        values = np.asarray(var.values)
        if values.dtype.kind not in "biuf":
            raise ProblemError(f"input variable {vname!r}: must be numeric; has dtype {values.dtype}")
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0]
            where = ", ".join(f"{d}={i}" for d, i in zip(var.dims, bad))
            raise ProblemError(f"input variable {vname!r}: contains NaN or inf (first at {where})")
        if MEMBER in var.dims:
            if var.dims[0] != MEMBER:
                raise ProblemError(f"input variable {vname!r}: dims {var.dims}; {MEMBER!r} must be the first dim")
            per_member[vname] = np.ascontiguousarray(values)
        else:
            shared[vname] = np.ascontiguousarray(values)
    if not per_member:
        raise ProblemError(f"input {name}: no variable has the {MEMBER!r} dim")
    members = np.asarray(ds[MEMBER].values) if MEMBER in ds.coords else np.arange(ds.sizes[MEMBER])
    if len(set(members.tolist())) != members.shape[0]:
        raise ProblemError(f"input {name}: the {MEMBER!r} coordinate has duplicate labels")
    return Inputs(ds, members, per_member, shared, name)


def tensors(per_member: Mapping[str, np.ndarray], shared: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The dict handed to ``problem(inputs)``: tensors (dtype kept), and a clear error for a missing key."""
    arrays = {**shared, **per_member}
    return _InputDict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()})


@dataclasses.dataclass(frozen=True)
class ProblemScript:
    """A problem script (its source, so workers elsewhere need no shared filesystem) or a callable."""

    name: str
    source: str | None = None
    function: Callable[..., Any] | None = None

    @classmethod
    def from_user(cls, script: Any) -> ProblemScript:
        if callable(script) and not isinstance(script, (str, os.PathLike)):
            return cls(getattr(script, "__qualname__", type(script).__name__), function=script)
        if not isinstance(script, (str, os.PathLike)):
            raise ProblemError(f"script: expected a path to a Python file or a callable; got {type(script).__name__}")
        path = Path(script)
        if not path.is_file():
            raise ProblemError(f"script: {str(path)!r} does not exist")
        ref = cls(path.name, source=path.read_text())
        ref.load()  # syntax errors and a missing problem() surface now
        return ref

    def fingerprint(self) -> str:
        if self.source is not None:
            return hashlib.sha256(self.source.encode()).hexdigest()
        fn = self.function
        try:
            text = inspect.getsource(fn)  # type: ignore[arg-type]
        except (OSError, TypeError):
            text = ""
        return hashlib.sha256(f"{getattr(fn, '__module__', '')}:{self.name}:{text}".encode()).hexdigest()

    def load(self) -> Callable[[dict[str, torch.Tensor]], Any]:
        """The ``problem`` function (compiled once per process)."""
        if self.function is not None:
            return self.function
        key = f"sciode_problem_script_{self.fingerprint()[:16]}"
        module = sys.modules.get(key)
        if module is None:
            module = types.ModuleType(key)
            module.__file__ = self.name
            try:
                code = compile(self.source, self.name, "exec")  # type: ignore[arg-type]
            except SyntaxError as exc:
                raise ProblemError(f"script {self.name}: syntax error: {exc}") from exc
            sys.modules[key] = module
            try:
                exec(code, module.__dict__)
            except Exception as exc:
                del sys.modules[key]
                raise ProblemError(f"script {self.name}: raised while being loaded: {type(exc).__name__}: {exc}") from exc
            except BaseException:
                del sys.modules[key]
                raise
        fn = getattr(module, "problem", None)
        if not callable(fn):
            raise ProblemError(f"script {self.name}: defines no function problem(inputs) -> sciode.ODEProblem")
        return fn

"""Batch runs: solve every member of a netCDF dataset with a problem script, chunk by chunk.

A problem script defines ``problem(inputs: dict[str, torch.Tensor]) -> ODEProblem``;
it is called with one chunk of members at a time (each tensor's leading dim is the
chunk's members) and its ``u0`` has shape ``(members, n)``, so a chunk is solved as
one batched tensor (``stepping="per_member"`` for adaptive solvers, so members
keep their own step sizes and return codes). The output has ``u`` on
``("member", "time", "state")``, the input variables, and per-member ``retcode``
and ``message``. See docs/batch.md.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._version import __version__
from .batch_chunk import Template, single_thread, solve_members
from .batch_exec import run_dask, run_local
from .batch_inputs import BatchOptions, Inputs, ProblemScript, RunError, load_inputs, make_options
from .batch_store import PartialStore
from .errors import ProblemError
from .io.netcdf import save
from .solution import ReturnCode

__all__ = ["run_batch"]

PREFLIGHT_MEMBERS = 5


def _check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ProblemError(f"{name}: must be an int >= {minimum}; got {value!r}")
    return int(value)


def _check_output(output_path: Any, overwrite: bool) -> Path | None:
    if output_path is None:
        return None
    path = Path(output_path)
    if path.is_dir():
        raise ProblemError(f"output: {str(path)!r} is a directory; give a file name such as trajectories.nc")
    if not path.parent.is_dir():
        raise ProblemError(f"output: directory {str(path.parent)!r} does not exist")
    if path.exists() and not overwrite:
        raise ProblemError(f"output: {str(path)!r} exists; pass --overwrite (overwrite=True) to replace it")
    return path


def _preflight(script: ProblemScript, inputs: Inputs, options: BatchOptions) -> tuple[Template, xr.Dataset]:
    """Solve the first member alone: checks the script and options end to end and fixes the output layout."""
    fn = script.load()
    errors = []
    for i in range(min(PREFLIGHT_MEMBERS, inputs.size)):
        try:
            with single_thread():
                sol = solve_members(fn, inputs.chunk(i, i + 1), inputs.shared, options)
        except (RunError, ProblemError) as exc:
            raise ProblemError(f"script {script.name}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - try the next member: this one may just be a bad member
            errors.append(f"member {inputs.members[i]}: {type(exc).__name__}: {exc}")
            continue
        template = Template(sol.t.detach().cpu().numpy(), sol.problem.names(), str(sol.u.detach().cpu().numpy().dtype),
                            bool(sol.member_stats))
        return template, sol.to_xarray()
    raise ProblemError(f"script {script.name}: problem(inputs) raised for the first {len(errors)} members; "
                       + "; ".join(errors))


def _assemble(parts: list[xr.Dataset], inputs: Inputs, reference: xr.Dataset, extra: dict[str, Any]) -> xr.Dataset:
    out = xr.concat(parts, dim="member", data_vars="all", coords="minimal", compat="override", combine_attrs="drop")
    stats: dict[str, int] = {}
    for part in parts:
        for key, value in part.attrs.items():
            stats[key] = stats.get(key, 0) + int(value)
    member_attrs = dict(inputs.dataset["member"].attrs) if "member" in inputs.dataset.coords else {}
    out = out.assign_coords(member=("member", inputs.members, member_attrs))
    out = out.assign_coords({k: v for k, v in reference.coords.items() if k.startswith("state_")})
    out["time"].attrs.update(reference["time"].attrs)
    out["u"].attrs.update(reference["u"].attrs)
    for name, var in inputs.dataset.data_vars.items():
        out[name] = xr.Variable(var.dims, var.values, dict(var.attrs))
    attrs = {k: v for k, v in reference.attrs.items() if not k.startswith("stats_") and k not in ("retcode", "message")}
    failed = int((out["retcode"].values != ReturnCode.SUCCESS).sum())
    attrs.update(stats)
    attrs.update(extra, members=inputs.size, failed_members=failed,
                 retcode="SUCCESS" if failed == 0 else f"{failed} of {inputs.size} members failed")
    out.attrs = attrs
    return out


def run_batch(script: str | os.PathLike[str] | Callable[..., Any], inputs: xr.Dataset | str | os.PathLike[str],
              output_path: str | os.PathLike[str] | None = None, *, solver: str = "tsit5", saveat: Any = 100,
              dt: float | None = None, rtol: float = 1e-6, atol: float = 1e-9, max_steps: int = 100_000,
              chunk: int = 1000, workers: int | None = None, scheduler: str | None = None,
              overwrite: bool = False, progress: bool = True) -> xr.Dataset:
    """Solve every member of ``inputs`` with the problem script and return (and optionally write) the trajectories.

    script: a path to a Python file defining ``problem(inputs)``, or that function.
    inputs: a netCDF path or Dataset with a ``member`` dim. saveat: a number of equal
    intervals or a list of times shared by all members. chunk: members per batched
    solve. workers: start a local dask cluster with this many processes; scheduler:
    join a dask cluster at this address; neither: run in this process.
    output_path: write netCDF there (atomically: it appears only when complete);
    completed chunks are kept in ``.sciode-partial-<name>/`` beside it until then,
    and a re-run with the same inputs and options resumes from them.
    A member whose solve fails gets its retcode, a message and NaNs; a member for
    which the script raises gets FAILURE and the exception text; the run goes on.
    """
    chunk = _check_int(chunk, "chunk")
    if workers is not None:
        workers = _check_int(workers, "workers")
    if workers is not None and scheduler is not None:
        raise ProblemError("workers/scheduler: give one of them (start a local cluster, or join one), not both")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise ProblemError(f"scheduler: must be an address such as tcp://10.0.0.1:8786; got {scheduler!r}")
    output = _check_output(output_path, overwrite)
    options = make_options(solver, saveat, dt, rtol, atol, max_steps)
    ref = ProblemScript.from_user(script)
    data = load_inputs(inputs)
    template, reference = _preflight(ref, data, options)

    bounds = [(i, s, min(s + chunk, data.size)) for i, s in enumerate(range(0, data.size, chunk))]
    key = hashlib.sha256("|".join([__version__, ref.fingerprint(), data.fingerprint(), options.fingerprint(),
                                   str(chunk)]).encode()).hexdigest()
    store = PartialStore(output, key, len(bounds)) if output is not None else None
    done = store.open() if store is not None else {}
    note = (lambda text: print(f"sciode run: {text}", file=sys.stderr)) if progress else (lambda text: None)
    if done:
        note(f"resuming: {len(done)} of {len(bounds)} chunks already done in {store.directory.name}")  # type: ignore[union-attr]

    from tqdm.auto import tqdm

    failed = sum(int((ds["retcode"].values != ReturnCode.SUCCESS).sum()) for ds in done.values())
    bar = tqdm(total=data.size, unit="member", desc="sciode run", disable=not progress, file=sys.stderr,
               initial=sum(stop - start for i, start, stop in bounds if i in done))
    bar.set_postfix(failed=failed)
    tasks = [(i, data.chunk(start, stop), data.shared) for i, start, stop in bounds if i not in done]
    if workers is None and scheduler is None:
        results = run_local(tasks, ref, options, template)
    else:
        results = run_dask(tasks, ref, options, template, workers=workers, scheduler=scheduler, on_start=note)
    try:
        for index, ds in results:
            if store is not None:
                store.put(index, ds)
            done[index] = ds
            failed += int((ds["retcode"].values != ReturnCode.SUCCESS).sum())
            bar.update(ds.sizes["member"])
            bar.set_postfix(failed=failed)
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()
    out = _assemble([done[i] for i in range(len(bounds))], data, reference,
                    {"chunk": chunk, "script": ref.name, "input": Path(data.source).name})
    if output is not None:
        save(out, output, overwrite=True)
        store.remove()  # type: ignore[union-attr]
        note(f"wrote {output} ({data.size} members, {failed} failed)")
    return out

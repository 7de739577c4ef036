"""``run_batch``: check everything, solve a preflight member, then solve every chunk and write the output."""
from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xarray as xr

from .._version import __version__
from ..errors import ProblemError
from ..io.netcdf import save
from ..solution import ReturnCode
from ..validation import (
    DEFAULT_ATOL,
    DEFAULT_MAX_MEMORY_GIB,
    DEFAULT_MAX_STEPS,
    DEFAULT_RTOL,
    positive_int,
    positive_number,
)
from .assemble import assemble, check_input_names
from .chunk import failed_members
from .cluster import run_dask
from .executors import run_local
from .inputs import Inputs, format_bytes, load_inputs
from .options import BatchOptions, make_options
from .output import check_output, check_writable, locked
from .script import ProblemScript
from .store import PartialStore
from .template import Template, preflight

__all__ = ["run_batch"]


def _output_bytes(members: int, reference: xr.Dataset) -> int:
    """The output holds every member's trajectory twice at its peak (the chunks and their concatenation)."""
    per_member = sum(int(v.size) * v.dtype.itemsize for v in reference.data_vars.values())
    return 2 * members * per_member


def _solve_all(data: Inputs, bounds: list[tuple[int, int, int]], done: dict[int, xr.Dataset], script: ProblemScript,
               options: BatchOptions, template: Template, store: PartialStore | None, workers: int | None,
               scheduler: str | None, progress: bool, note: Callable[[str], None]) -> None:
    """Solve the chunks not in ``done`` (here or on dask), storing each as it finishes, with a progress bar."""
    from tqdm.auto import tqdm

    failed = sum(int((ds["retcode"].values != ReturnCode.SUCCESS).sum()) for ds in done.values())
    bar = tqdm(total=data.size, unit="member", desc="sciode run", disable=not progress, file=sys.stderr,
               initial=sum(stop - start for i, start, stop in bounds if i in done))
    bar.set_postfix(failed=failed)
    tasks = [(i, data.chunk(start, stop), data.shared) for i, start, stop in bounds if i not in done]
    if workers is None and scheduler is None:
        results = run_local(tasks, script, options, template)
    else:
        results = run_dask(tasks, script, options, template, workers=workers, scheduler=scheduler, on_start=note)
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
        results.close()


def run_batch(script: str | os.PathLike[str] | Callable[..., Any], inputs: xr.Dataset | str | os.PathLike[str],
              output_path: str | os.PathLike[str] | None = None, *, solver: str = "tsit5", saveat: Any = 100,
              dt: float | None = None, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
              max_steps: int = DEFAULT_MAX_STEPS, chunk: int = 1000, workers: int | None = None,
              scheduler: str | None = None, overwrite: bool = False, progress: bool = True,
              max_memory_gib: float = DEFAULT_MAX_MEMORY_GIB) -> xr.Dataset:
    """Solve every member of ``inputs`` with the problem script and return (and optionally write) the trajectories.

    script: a path to a Python file defining ``problem(inputs)`` (it is executed, here and
    on every worker: run only scripts you trust), or that function.
    inputs: a netCDF path or Dataset with a ``member`` dim. saveat: a number of equal
    intervals or a list of times shared by all members. chunk: members per batched
    solve. workers: start a local dask cluster (TLS, loopback) with this many processes;
    scheduler: join a dask cluster at this address; neither: run in this process.
    output_path: write netCDF there (atomically: it appears only when complete), holding
    a lock beside it; completed chunks are kept in ``.sciode-partial-<name>/`` until
    then, and a re-run whose inputs, options and script output agree resumes from them.
    max_memory_gib: refuse, before loading, inputs and outputs that need more memory.
    A member whose solve fails gets its retcode, a message and NaNs; a member for
    which the script raises gets FAILURE and the exception text; the run goes on.
    """
    chunk = positive_int(chunk, "chunk")
    if workers is not None:
        workers = positive_int(workers, "workers")
    if workers is not None and scheduler is not None:
        raise ProblemError("workers/scheduler: give one of them (start a local cluster, or join one), not both")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise ProblemError(f"scheduler: must be an address such as tls://10.0.0.1:8786; got {scheduler!r}")
    budget = int(positive_number(max_memory_gib, "max_memory_gib") * 2**30)  # type: ignore[operator]
    output = check_output(output_path, overwrite)
    options = make_options(solver, saveat, dt, rtol, atol, max_steps)
    ref = ProblemScript.from_user(script)
    data = load_inputs(inputs, budget)
    template, reference = preflight(ref, data, options)
    check_input_names(data, reference)
    need = data.nbytes + _output_bytes(data.size, reference)
    if need > budget:
        raise ProblemError(f"max_memory_gib: the inputs and the output of {data.size} members need about "
                           f"{format_bytes(need)}, more than the limit of {format_bytes(budget)}; raise it with "
                           "--max-memory GIB if this machine has the memory, or split the members into several runs")

    bounds = [(i, s, min(s + chunk, data.size)) for i, s in enumerate(range(0, data.size, chunk))]
    key = hashlib.sha256("|".join([__version__, ref.fingerprint(), template.digest, data.fingerprint(),
                                   options.fingerprint(), str(chunk)]).encode()).hexdigest()
    store = PartialStore(output, key, bounds) if output is not None else None
    note = (lambda text: print(f"sciode run: {text}", file=sys.stderr)) if progress else (lambda text: None)
    extra = {"chunk": chunk, "script": ref.name, "input": Path(data.source).name}
    with locked(output, store.directory if store is not None else None):
        if output is not None:
            probe = assemble([failed_members(1, "write test", template)], data.head(1), reference, extra)
            check_writable(probe, output)
        done, reason = store.open(template) if store is not None else ({}, None)
        if reason is not None:
            note(f"not resuming: discarded {store.directory.name}: {reason}")  # type: ignore[union-attr]
        if done:
            note(f"resuming: {len(done)} of {len(bounds)} chunks already done in {store.directory.name}")  # type: ignore[union-attr]
        _solve_all(data, bounds, done, ref, options, template, store, workers, scheduler, progress, note)
        out = assemble([done[i] for i in range(len(bounds))], data, reference, extra)
        if output is not None:
            save(out, output, overwrite=True)
            store.remove()  # type: ignore[union-attr]
            note(f"wrote {output} ({data.size} members, {out.attrs['failed_members']} failed)")
    return out

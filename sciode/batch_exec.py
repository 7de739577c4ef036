"""Where chunks run: in this process, or as tasks on a dask.distributed cluster.

Both executors yield ``(index, dataset)`` as chunks finish; the caller stores
and counts them. ``--workers N`` starts a LocalCluster of N single-threaded
worker processes on loopback; ``--scheduler ADDRESS`` joins a running cluster.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import xarray as xr

from .batch_chunk import solve_chunk
from .errors import ProblemError

__all__ = ["run_local", "run_dask"]

Task = tuple[int, dict, dict]  # (chunk index, per-member arrays, shared arrays)


def run_local(tasks: Sequence[Task], *args: Any) -> Iterator[tuple[int, xr.Dataset]]:
    for index, per_member, shared in tasks:
        yield index, solve_chunk(args[0], per_member, shared, *args[1:])


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is a declared extra
        raise ProblemError("workers/scheduler: dask.distributed is not installed (pip install 'sciode[distributed]')") from exc
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ProblemError(f"scheduler: cannot connect to {scheduler!r}: {exc}") from exc
        with client:
            yield client
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=40)
    with cluster, Client(cluster) as client:
        yield client


def run_dask(tasks: Sequence[Task], script: Any, options: Any, template: Any, *, workers: int | None,
             scheduler: str | None, on_start: Callable[[str], None] | None = None) -> Iterator[tuple[int, xr.Dataset]]:
    """Submit every chunk as a task; yield results as they complete (cancelling the rest on interrupt)."""
    from distributed import as_completed

    with _client(workers, scheduler) as client:
        if on_start is not None:
            on_start(f"dask: {len(client.scheduler_info().get('workers', {}))} workers at {client.scheduler.address}")
        script_future = client.scatter(script, broadcast=True)
        futures = {}
        for index, per_member, shared in tasks:
            fut = client.submit(solve_chunk, script_future, per_member, shared, options, template, pure=False,
                                key=f"sciode-chunk-{index}-{id(tasks):x}")
            futures[fut] = index
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            client.cancel(list(futures))

"""Chunks as tasks on a dask.distributed cluster, surviving workers that die.

``--workers N`` starts a LocalCluster of N single-threaded worker processes that
listens on loopback only and speaks TLS with throw-away credentials
(``Security.temporary()``), so no other local process can join it or submit code.
``--scheduler ADDRESS`` joins a running cluster with the security of the dask
configuration (``distributed.comm.tls.*``; see docs/batch.md).

Every task carries everything it needs (the script's source, the chunk's inputs):
nothing the run depends on lives only in a worker's memory. A chunk whose worker
dies is retried once, then split in halves, until the members that kill a worker
are alone; a member that kills a worker twice on its own gets FAILURE with a
message, the rest complete.
"""
from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import xarray as xr

from ..errors import ProblemError
from .chunk import WORKER_DIED, failed_members, join_members, solve_chunk
from .executors import Task
from .options import BatchOptions
from .script import ProblemScript
from .template import Template

__all__ = ["run_dask", "local_cluster"]


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A TLS, loopback-only LocalCluster and a Client on it.

    A task is given up after the first death of its worker, and each worker holds only
    the task it runs (``worker-saturation`` 1), so a death is charged to that task alone.
    """
    import dask
    from distributed import Client, LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               protocol="tls://", security=security, dashboard_address=None, silence_logs=40)
    with cluster, Client(cluster, security=security) as client:
        yield client


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - dask is a declared extra
        raise ProblemError("workers/scheduler: dask.distributed is not installed "
                           "(pip install 'sciode[distributed]')") from exc
    if scheduler is None:
        with local_cluster(workers or 1) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ProblemError(f"scheduler: cannot connect to {scheduler!r}: {exc}") from exc
    with client:
        yield client


class _Pieces:
    """The parts of each chunk that finished; a chunk is whole when its parts cover all its members."""

    def __init__(self, tasks: Sequence[Task]) -> None:
        self.size = {index: len(next(iter(per_member.values()))) for index, per_member, _ in tasks}
        self.parts: dict[int, dict[int, xr.Dataset]] = {index: {} for index in self.size}

    def add(self, index: int, start: int, ds: xr.Dataset) -> xr.Dataset | None:
        parts = self.parts[index]
        parts[start] = ds
        if sum(p.sizes["member"] for p in parts.values()) < self.size[index]:
            return None
        del self.parts[index]
        ordered = [parts[s] for s in sorted(parts)]
        return ordered[0] if len(ordered) == 1 else join_members(ordered)


def run_dask(tasks: Sequence[Task], script: ProblemScript, options: BatchOptions, template: Template, *,
             workers: int | None, scheduler: str | None,
             on_start: Callable[[str], None] | None = None) -> Iterator[tuple[int, xr.Dataset]]:
    """Submit every chunk as a task; yield chunks as they complete (cancelling the rest on interrupt)."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    with _client(workers, scheduler) as client:
        if on_start is not None:
            on_start(f"dask: {len(client.scheduler_info().get('workers', {}))} workers at {client.scheduler.address}")
        inputs = {index: (per_member, shared) for index, per_member, shared in tasks}
        pieces = _Pieces(tasks)
        pending: dict[Any, tuple[int, int, int, int]] = {}
        serial = itertools.count()
        queue = as_completed()

        def submit(index: int, start: int, stop: int, attempt: int) -> None:
            per_member, shared = inputs[index]
            part = {k: v[start:stop] for k, v in per_member.items()}
            fut = client.submit(solve_chunk, script, part, shared, options, template, pure=False,
                                key=f"sciode-chunk-{index}-{start}-{stop}-{next(serial)}-{id(pending):x}")
            pending[fut] = (index, start, stop, attempt)
            queue.add(fut)

        for index in pieces.size:
            submit(index, 0, pieces.size[index], 0)
        try:
            for fut in queue:
                index, start, stop, attempt = pending.pop(fut)
                try:
                    ds = fut.result()
                except KilledWorker:
                    if stop - start > 1 and attempt > 0:  # it kills workers: find the members that do
                        middle = (start + stop) // 2
                        submit(index, start, middle, 1)
                        submit(index, middle, stop, 1)
                    elif attempt < 2:  # the worker may have died of something else: try the piece again
                        submit(index, start, stop, attempt + 1)
                    else:
                        whole = pieces.add(index, start, failed_members(1, WORKER_DIED, template))
                        if whole is not None:
                            yield index, whole
                    continue
                whole = pieces.add(index, start, ds)
                if whole is not None:
                    yield index, whole
        finally:
            client.cancel(list(pending))

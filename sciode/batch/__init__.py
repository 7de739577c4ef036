"""Batch runs: solve every member of a netCDF dataset with a problem script, chunk by chunk.

A problem script defines ``problem(inputs: dict[str, torch.Tensor]) -> ODEProblem``;
it is called with one chunk of members at a time and returns a Problem whose
``u0`` has shape ``(members, n)``. The output has ``u`` on ``("member", "time",
"state")``, the input variables, and per-member ``retcode`` and ``message``.
See docs/batch.md. One job per module:

- ``options``: the solve options of a run, checked against the registry;
- ``inputs``: the members dataset, opened lazily and checked against a memory budget;
- ``script``: the problem script (source text, so it travels to workers);
- ``template``: the preflight solve that fixes the output layout and the resume key;
- ``chunk``: one chunk solved as a batched tensor (the unit of work);
- ``executors`` / ``cluster``: where chunks run (this process, a dask cluster);
- ``store``: finished chunks on disk, so an interrupted run resumes;
- ``output``: the output path, its lock, stale temporaries, a write test before solving;
- ``assemble``: the chunks joined into the output dataset;
- ``run``: ``run_batch``, which joins the above.
"""
from __future__ import annotations

from .errors import MissingInput, RunError
from .run import run_batch

__all__ = ["MissingInput", "RunError", "run_batch"]

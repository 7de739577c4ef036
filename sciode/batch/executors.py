"""Where chunks run: in this process (here), or on a dask.distributed cluster (``cluster``).

Both yield ``(index, dataset)`` as chunks finish; the caller stores and counts them.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import xarray as xr

from .chunk import solve_chunk
from .options import BatchOptions
from .script import ProblemScript
from .template import Template

__all__ = ["Task", "run_local"]

Task = tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]  # (chunk index, per-member arrays, shared arrays)


def run_local(tasks: Sequence[Task], script: ProblemScript, options: BatchOptions,
              template: Template) -> Iterator[tuple[int, xr.Dataset]]:
    for index, per_member, shared in tasks:
        yield index, solve_chunk(script, per_member, shared, options, template)

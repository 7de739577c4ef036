"""The output file of a batch run: its path, a lock that keeps two runs apart, leftovers of dead runs.

The lock is ``.NAME.lock`` beside the output (``filelock``: an OS lock, released when
the process ends however it ends, so a killed run never leaves a stale lock). While
it is held no other sciode run writes this output, so any temporary file of it
(``.NAME.*.tmp``, also inside the partial directory) is a leftover of a dead run
and is removed.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xarray as xr

from ..errors import ProblemError
from ..io.netcdf import save, temporary_files
from .errors import RunError

__all__ = ["check_output", "locked", "check_writable"]


def check_output(output_path: Any, overwrite: bool) -> Path | None:
    if output_path is None:
        return None
    if not isinstance(output_path, (str, os.PathLike)):
        raise ProblemError(f"output: expected a path to a netCDF file; got {type(output_path).__name__}")
    path = Path(output_path)
    if path.is_dir():
        raise ProblemError(f"output: {str(path)!r} is a directory; give a file name such as trajectories.nc")
    if not path.parent.is_dir():
        raise ProblemError(f"output: directory {str(path.parent)!r} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ProblemError(f"output: directory {str(path.parent)!r} is not writable")
    if path.exists() and not overwrite:
        raise ProblemError(f"output: {str(path)!r} exists; pass --overwrite (overwrite=True) to replace it")
    return path


@contextlib.contextmanager
def locked(output: Path | None, partial: Path | None) -> Iterator[None]:
    """Hold the output's lock (or fail at once when another run holds it); remove leftovers of dead runs."""
    if output is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(output.parent / f".{output.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunError(f"output: another sciode run is writing {str(output)!r} (it holds {lock.lock_file}); "
                       "wait for it to finish, or choose another output") from None
    try:
        for leftover in _leftovers(output, partial):
            leftover.unlink(missing_ok=True)
        yield
    finally:
        lock.release()


def _probe(output: Path) -> Path:
    return output.parent / f".{output.name}.probe.tmp"


def _leftovers(output: Path, partial: Path | None) -> list[Path]:
    """Temporary files of the output, of its write probe, and of the chunk files in the partial directory."""
    found = temporary_files(output) + temporary_files(_probe(output)) + [p for p in [_probe(output)] if p.exists()]
    if partial is not None and partial.is_dir():
        found += [tmp for name in ("manifest.json", "chunk-*.nc") for tmp in partial.glob(f".{name}.*.tmp")]
    return found


def check_writable(example: xr.Dataset, output: Path) -> None:
    """Write the output's template (one member) beside the output and delete it: unwritable attributes,
    a read-only directory or a full disk show up now, not after every member was solved."""
    probe = _probe(output)
    try:
        save(example, probe)
    finally:
        probe.unlink(missing_ok=True)

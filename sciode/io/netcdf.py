"""Lossless netCDF4 save/load with compression, chunking and atomic writes.

``save`` writes to a temporary file in the target directory and renames it into
place (``os.replace`` is atomic on POSIX and Windows), so a reader never sees a
half-written file at ``path``, even when the writer is killed.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ProblemError, WriteError

__all__ = ["save", "load", "atomic_path", "check_netcdf", "encoding_for", "temporary_files"]

#: Target size of one compressed chunk (bytes, before compression).
CHUNK_BYTES = 1 << 20
_SIGNATURES = (b"\x89HDF\r\n\x1a\n", b"CDF\x01", b"CDF\x02", b"CDF\x05")
#: A failed write with less free space than this on the device is reported as "device full".
FULL_BELOW = 1 << 20


def _chunks(var: xr.Variable) -> tuple[int, ...]:
    """Chunk shape of at most ~CHUNK_BYTES: whole ``time``/``state`` axes, members split first.

    One member's whole trajectory then sits in one chunk, the access pattern of
    plotting and of reading members back for a fit.
    """
    chunks = list(var.shape)
    order = sorted(range(var.ndim), key=lambda i: (var.dims[i] in ("time", "state"), var.dims[i] == "state"))
    while int(np.prod(chunks)) * var.dtype.itemsize > CHUNK_BYTES:
        i = next((i for i in order if chunks[i] > 1), None)
        if i is None:
            break
        chunks[i] = (chunks[i] + 1) // 2
    return tuple(max(1, c) for c in chunks)


def encoding_for(ds: xr.Dataset, *, compress: bool = True, complevel: int = 4) -> dict[str, dict[str, Any]]:
    """netCDF4 encoding: zlib + shuffle and ~1 MiB chunks for every numeric array variable."""
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if var.dtype.kind not in "biufc" or var.ndim == 0 or var.size == 0:
            continue
        enc: dict[str, Any] = {"chunksizes": _chunks(var)}
        if compress:
            enc.update(zlib=True, complevel=complevel, shuffle=True)
        encoding[str(name)] = enc
    return encoding


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files :func:`atomic_path` makes for ``path`` (leftovers, when no writer is running)."""
    target = Path(path)
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def _write_error(exc: BaseException, target: Path) -> WriteError | None:
    """A clear error for a write that failed because the device is full (netCDF only says "HDF error")."""
    if isinstance(exc, OSError) and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        return None
    full = isinstance(exc, OSError) or free < FULL_BELOW
    if not full:
        return None
    return WriteError(f"cannot write {str(target)!r}: the device is full ({free} bytes free in "
                      f"{str(target.parent)!r}); free some space and run again")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``, else delete it.

    The file gets the permissions any other writer would give it (``0666`` less the
    umask; ``mkstemp`` alone would make it ``0600``). A write that fails on a full
    device raises :class:`sciode.errors.WriteError` saying so.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        error = _write_error(exc, target)  # before the temporary file is gone and frees its space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if error is not None:
            raise error from exc
        raise


def save(obj: Any, path: str | os.PathLike[str], *, overwrite: bool = True, compress: bool = True,
         complevel: int = 4) -> Path:
    """Write a Solution or an xarray.Dataset to netCDF4 at ``path``, atomically.

    Numeric variables are zlib-compressed (``complevel``, shuffle on) in ~1 MiB
    chunks; values, dtypes, coords and attributes come back unchanged from
    :func:`load`. ``overwrite=False`` refuses to replace an existing file.
    """
    ds = obj if isinstance(obj, xr.Dataset) else _to_dataset(obj)
    target = Path(path)
    if not target.parent.is_dir():
        raise ProblemError(f"path: directory {str(target.parent)!r} does not exist")
    if target.exists() and not overwrite:
        raise ProblemError(f"path: {str(target)!r} exists; pass overwrite=True to replace it")
    if not isinstance(complevel, int) or not 0 <= complevel <= 9:
        raise ProblemError(f"complevel must be an int in 0..9; got {complevel!r}")
    ds = ds.copy(deep=False)
    for var in ds.variables.values():
        var.encoding = {}  # stale encodings (chunks of another shape, source paths) of a loaded dataset
    attributes = list(ds.attrs.items())
    attributes += [(f"{n}.{k}", v) for n, var in ds.variables.items() for k, v in var.attrs.items()]
    for key, value in attributes:
        if not _storable(value):
            raise ProblemError(f"attribute {key!r} = {value!r} cannot be stored in netCDF "
                               "(use a string, a number, or a list of numbers or of strings)")
    with atomic_path(target) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4",
                     encoding=encoding_for(ds, compress=compress, complevel=complevel))
    return target


def _storable(value: Any) -> bool:
    """What netCDF4 attributes hold: a string, a number, a 1-D array or list of numbers, or of strings (NC_STRING)."""
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (dict, set)):
        return False
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value, dtype=object).reshape(-1)) if isinstance(value, np.ndarray) else list(value)
        if isinstance(value, np.ndarray) and value.ndim > 1:
            return False
        numbers = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                      for v in items)
        return numbers or all(isinstance(v, str) for v in items)
    return isinstance(value, (int, float, np.integer, np.floating))


def _to_dataset(obj: Any) -> xr.Dataset:
    to_xarray = getattr(obj, "to_xarray", None)
    if to_xarray is None:
        raise ProblemError(f"save expects a sciode.Solution or an xarray.Dataset; got {type(obj).__name__}")
    return to_xarray()


def check_netcdf(path: str | os.PathLike[str], argument: str = "path") -> Path:
    """Raise ProblemError unless ``path`` is an existing netCDF (classic or netCDF4/HDF5) file."""
    p = Path(path)
    if not p.exists():
        raise ProblemError(f"{argument}: {str(p)!r} does not exist")
    if not p.is_file():
        raise ProblemError(f"{argument}: {str(p)!r} is not a file")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not any(head.startswith(sig) for sig in _SIGNATURES):
        raise ProblemError(f"{argument}: {str(p)!r} is not a netCDF file (no netCDF/HDF5 signature)")
    return p


def load(path: str | os.PathLike[str], **open_kwargs: Any) -> xr.Dataset:
    """Read a netCDF file fully into memory (the file is closed on return).

    Timedelta decoding is off so a ``time`` in ``"s"`` stays the float it was
    saved as; other keyword arguments go to ``xarray.open_dataset``.
    """
    p = check_netcdf(path)
    open_kwargs.setdefault("decode_timedelta", False)
    try:
        return xr.load_dataset(p, engine="netcdf4", **open_kwargs)
    except OSError as exc:
        raise ProblemError(f"path: cannot read {str(p)!r} as netCDF: {exc}") from exc

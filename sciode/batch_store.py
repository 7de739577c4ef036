"""Completed chunks on disk, so an interrupted batch run resumes where it stopped.

Next to ``traj.nc`` lives ``.sciode-partial-traj.nc/``: a ``manifest.json`` with a
hash of everything that determines the result (inputs, script, options, chunking)
and one netCDF file per finished chunk, each written atomically. A re-run with
the same hash reuses the chunk files; a different hash starts over. The directory
is removed once the output file is in place.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import xarray as xr

from .io.netcdf import atomic_path, load, save

__all__ = ["PartialStore"]


class PartialStore:
    """The ``.sciode-partial-<output>`` directory of one run."""

    def __init__(self, output: Path, key: str, n_chunks: int) -> None:
        self.directory = output.parent / f".sciode-partial-{output.name}"
        self.key, self.n_chunks = key, n_chunks

    def chunk_path(self, index: int) -> Path:
        return self.directory / f"chunk-{index:06d}.nc"

    def open(self) -> dict[int, xr.Dataset]:
        """Create (or reset) the directory; return the chunks finished by an earlier run with the same key."""
        manifest = self.directory / "manifest.json"
        done: dict[int, xr.Dataset] = {}
        if manifest.exists():
            try:
                same = json.loads(manifest.read_text()).get("key") == self.key
            except (OSError, ValueError):
                same = False
            if same:
                for index in range(self.n_chunks):
                    path = self.chunk_path(index)
                    if path.exists():
                        try:
                            done[index] = load(path)
                        except Exception:  # noqa: BLE001 - unreadable leftovers are recomputed
                            path.unlink(missing_ok=True)
                return done
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps({"key": self.key, "chunks": self.n_chunks}))
        return done

    def put(self, index: int, ds: xr.Dataset) -> None:
        save(ds, self.chunk_path(index), compress=False)  # temporary: speed over size

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

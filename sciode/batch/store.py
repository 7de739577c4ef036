"""Completed chunks on disk, so an interrupted batch run resumes where it stopped.

Next to ``traj.nc`` lives ``.sciode-partial-traj.nc/``: a ``manifest.json`` with a
hash of everything that determines the result (inputs, script text, options,
chunking, and the preflight digest of what the script produced) and one netCDF
file per finished chunk, each written atomically. A re-run with the same hash
reuses the chunk files, after checking each against the current output template;
a different hash or a chunk that does not fit discards the directory, and says why.
The directory is removed once the output file is in place.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import xarray as xr

from ..io.netcdf import atomic_path, load, save
from .template import Template

__all__ = ["PartialStore"]


class PartialStore:
    """The ``.sciode-partial-<output>`` directory of one run."""

    def __init__(self, output: Path, key: str, bounds: list[tuple[int, int, int]]) -> None:
        self.directory = output.parent / f".sciode-partial-{output.name}"
        self.key, self.bounds = key, bounds

    def chunk_path(self, index: int) -> Path:
        return self.directory / f"chunk-{index:06d}.nc"

    def open(self, template: Template) -> tuple[dict[int, xr.Dataset], str | None]:
        """Create (or reset) the directory; return the usable chunks of an earlier run, and why others were not."""
        manifest = self.directory / "manifest.json"
        done: dict[int, xr.Dataset] = {}
        reason = None
        if manifest.exists():
            try:
                same = json.loads(manifest.read_text()).get("key") == self.key
            except (OSError, ValueError):
                same = False
            if same:
                done, reason = self._load(template)
                if reason is None:
                    return done, None
            else:
                reason = ("the inputs, the options or what the script produces differ from the interrupted run's "
                          "(checked on the first member: u0, p, tspan, f, time grid)")
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps({"key": self.key, "chunks": len(self.bounds)}))
        return {}, reason

    def _load(self, template: Template) -> tuple[dict[int, xr.Dataset], str | None]:
        done: dict[int, xr.Dataset] = {}
        for index, start, stop in self.bounds:
            path = self.chunk_path(index)
            if not path.exists():
                continue
            try:
                ds = load(path)
            except Exception:  # noqa: BLE001 - an unreadable leftover (e.g. a truncated copy) is recomputed
                path.unlink(missing_ok=True)
                continue
            why = template.mismatch(ds, stop - start)
            if why is not None:
                return {}, f"{path.name} does not fit this run: {why}"
            done[index] = ds
        return done, None

    def put(self, index: int, ds: xr.Dataset) -> None:
        save(ds, self.chunk_path(index), compress=False)  # temporary: speed over size

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

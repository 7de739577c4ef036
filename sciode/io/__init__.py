"""Labelled trajectories: Solution <-> xarray.Dataset <-> netCDF."""
from __future__ import annotations

from .xarray import solution_to_dataset

__all__ = ["solution_to_dataset"]

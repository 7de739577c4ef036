"""Labelled trajectories: Solution <-> xarray.Dataset <-> netCDF, and Dataset -> tensors."""
from __future__ import annotations

from .netcdf import load, save
from .tensors import read_observations, read_state, read_tensors
from .xarray import solution_to_dataset

__all__ = ["load", "read_observations", "read_state", "read_tensors", "save", "solution_to_dataset"]

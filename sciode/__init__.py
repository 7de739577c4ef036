"""sciode: differential equations on PyTorch, with Problem / Solver / Sensitivity plugins.

Everything an algorithm does lives in a plugin registered under the entry-point
group ``sciode.plugins``; this package holds the abstractions, the integration
loop, the registry and the I/O.
"""
from __future__ import annotations

from ._version import __version__
from .errors import NotDifferentiableError, PluginError, ProblemError, SciodeError, WriteError
from .hookspecs import hookimpl, hookspec
from .loop import Event, EventRecord, LoopOptions, PIController, integrate
from .problems import ODEProblem, SDEProblem, SecondOrderODEProblem, parameter_tensors, remake
from .registry import lookup, models, register_plugin, sensitivities, solvers
from .retcode import ReturnCode
from .sensitivity import Sensitivity
from .solution import Solution
from .solve import solve
from .solver import RHS, Solver, StepResult
from .structure import Banded
from .tableau import ButcherTableau, hermite_interpolant

__all__ = [
    "__version__",
    "io",
    "Banded",
    "run_batch",
    "ButcherTableau",
    "Event",
    "EventRecord",
    "LoopOptions",
    "NotDifferentiableError",
    "ODEProblem",
    "PIController",
    "PluginError",
    "ProblemError",
    "RHS",
    "ReturnCode",
    "SDEProblem",
    "SciodeError",
    "SecondOrderODEProblem",
    "Sensitivity",
    "Solution",
    "Solver",
    "StepResult",
    "WriteError",
    "hermite_interpolant",
    "hookimpl",
    "hookspec",
    "integrate",
    "lookup",
    "models",
    "parameter_tensors",
    "register_plugin",
    "remake",
    "sensitivities",
    "solve",
    "solvers",
]


def __getattr__(name: str):
    """``sciode.io`` and ``sciode.run_batch`` load lazily: they pull in xarray and netCDF4."""
    if name == "io":
        import importlib

        return importlib.import_module(".io", __name__)
    if name == "run_batch":
        from .batch import run_batch

        return run_batch
    raise AttributeError(f"module 'sciode' has no attribute {name!r}")

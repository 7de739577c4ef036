"""Hook specifications: what a sciode plugin may provide.

A plugin is a module (or object) registered under the entry-point group
``sciode.plugins``; it implements any of these hooks with ``@sciode.hookimpl``.
Each hook returns a list of classes, each with a unique string ``name``.
"""
from __future__ import annotations

import pluggy

PROJECT = "sciode"
ENTRY_POINT_GROUP = "sciode.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sciode_add_solvers() -> list[type]:
    """Return Solver subclasses (each with a unique ``name``)."""


@hookspec
def sciode_add_sensitivities() -> list[type]:
    """Return Sensitivity subclasses (each with a unique ``name``)."""


@hookspec
def sciode_add_models() -> list[type]:
    """Return model classes (``nn.Module`` subclasses with a unique ``name``)."""

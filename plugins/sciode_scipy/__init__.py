"""A bridge to scipy.integrate.solve_ivp: scipy_lsoda, scipy_bdf, scipy_radau (forward only)."""
from __future__ import annotations

import sciode

from .methods import SCIPY


@sciode.hookimpl
def sciode_add_solvers() -> list[type]:
    return list(SCIPY)

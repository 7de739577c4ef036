"""scipy's stiff and auto-switching integrators as sciode solvers."""
from __future__ import annotations

from .bridge import ScipySolver


class ScipyLSODA(ScipySolver):
    name = "scipy_lsoda"
    method = "LSODA"
    order = 12
    summary = "scipy solve_ivp LSODA (Adams/BDF with automatic stiffness switching), per member, forward only."
    reference = "Petzold (1983), SIAM J. Sci. Stat. Comput. 4:136-148; scipy.integrate.solve_ivp"


class ScipyBDF(ScipySolver):
    name = "scipy_bdf"
    method = "BDF"
    summary = "scipy solve_ivp BDF (variable-order NDF, orders 1-5), per member, forward only."
    reference = "Shampine & Reichelt (1997), SIAM J. Sci. Comput. 18:1-22; scipy.integrate.solve_ivp"


class ScipyRadau(ScipySolver):
    name = "scipy_radau"
    method = "Radau"
    summary = "scipy solve_ivp Radau IIA (order 5), per member, forward only."
    reference = "Hairer & Wanner, Solving ODEs II, IV.8; scipy.integrate.solve_ivp"


SCIPY = [ScipyLSODA, ScipyBDF, ScipyRadau]

"""Built-in explicit solvers: Runge-Kutta tableaux, Nystrom leapfrog, Verlet and RKN."""
from __future__ import annotations

import sciode

from .methods import RUNGE_KUTTA
from .nystrom import Nystrom2
from .second_order import SECOND_ORDER


@sciode.hookimpl
def sciode_add_solvers() -> list[type]:
    return [*RUNGE_KUTTA, Nystrom2, *SECOND_ORDER]

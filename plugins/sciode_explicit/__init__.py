"""Built-in explicit solvers: Runge-Kutta tableaux, Nystrom leapfrog, Verlet and RKN.

``ExplicitRungeKutta`` is public: a plugin declares a tableau solver by subclassing
it with a ``name`` and a ``tableau`` (see docs/plugins.md), without importing this
package's internals.
"""
from __future__ import annotations

import sciode

from .methods import RUNGE_KUTTA
from .nystrom import Nystrom2
from .rk import ExplicitRungeKutta
from .second_order import SECOND_ORDER

__all__ = ["ExplicitRungeKutta", "sciode_add_solvers"]


@sciode.hookimpl
def sciode_add_solvers() -> list[type]:
    return [*RUNGE_KUTTA, Nystrom2, *SECOND_ORDER]

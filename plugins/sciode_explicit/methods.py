"""The built-in explicit Runge-Kutta solvers: a name and a tableau each."""
from __future__ import annotations

from . import tableaux
from .rk import ExplicitRungeKutta


class Euler(ExplicitRungeKutta):
    name = "euler"
    tableau = tableaux.EULER
    summary = "Forward Euler, order 1, fixed step."
    reference = "Hairer, Norsett & Wanner, Solving ODEs I, II.1"


class Midpoint(ExplicitRungeKutta):
    name = "midpoint"
    tableau = tableaux.MIDPOINT
    summary = "Explicit midpoint, order 2, fixed step."
    reference = "Hairer, Norsett & Wanner, Solving ODEs I, II.1"


class Heun(ExplicitRungeKutta):
    name = "heun"
    tableau = tableaux.HEUN
    summary = "Heun's method (explicit trapezoid), order 2, fixed step."
    reference = "Hairer, Norsett & Wanner, Solving ODEs I, II.1"


class RK4(ExplicitRungeKutta):
    name = "rk4"
    tableau = tableaux.RK4
    summary = "Classical Runge-Kutta, order 4, fixed step, order-3 continuous extension."
    reference = "Kutta (1901); Hairer, Norsett & Wanner, Solving ODEs I, II.1 and II.6"


class Bosh3(ExplicitRungeKutta):
    name = "bosh3"
    tableau = tableaux.BOSH3
    summary = "Bogacki-Shampine 3(2), adaptive, FSAL, cubic Hermite dense output."
    reference = "Bogacki & Shampine, Appl. Math. Lett. 2 (1989) 321-325"


class Dopri5(ExplicitRungeKutta):
    name = "dopri5"
    tableau = tableaux.DOPRI5
    pi_coefficients = (0.85, 0.2)  # Hairer's DOPRI5 code (beta 0.04, alpha 0.2 - 0.75 beta), OrdinaryDiffEq.jl's DP5
    summary = "Dormand-Prince 5(4), adaptive, FSAL, 4th-order dense output."
    reference = "Dormand & Prince, J. Comput. Appl. Math. 6 (1980) 19-26; Shampine, Math. Comp. 46 (1986)"


class Tsit5(ExplicitRungeKutta):
    name = "tsit5"
    tableau = tableaux.TSIT5
    summary = "Tsitouras 5(4), adaptive, FSAL, 4th-order dense output; the default."
    reference = "Tsitouras, Comput. Math. Appl. 62 (2011) 770-775"


RUNGE_KUTTA = [Euler, Midpoint, Heun, RK4, Bosh3, Dopri5, Tsit5]

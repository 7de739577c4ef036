"""The built-in implicit and stiff solvers: a name and a coefficient set each."""
from __future__ import annotations

from . import coefficients
from .bdf import BDF
from .rosenbrock import Rosenbrock
from .theta import ThetaSolver


class ImplicitEuler(ThetaSolver):
    name = "implicit_euler"
    method = coefficients.IMPLICIT_EULER
    summary = "Implicit (backward) Euler, order 1, L-stable; Newton on a batched Jacobian; fixed or adaptive step."
    reference = "Hairer & Wanner, Solving ODEs II, IV.3 and IV.8"


class Trapezoid(ThetaSolver):
    name = "trapezoid"
    method = coefficients.TRAPEZOID
    summary = ("Trapezoid rule (Crank-Nicolson), order 2, A-stable; Newton on a batched Jacobian; fixed or "
               "adaptive step.")
    reference = "Hairer & Wanner, Solving ODEs II, IV.3; Hairer, Norsett & Wanner, Solving ODEs I, II.7"


class Rodas4(Rosenbrock):
    name = "rodas4"
    tableau = coefficients.RODAS4
    summary = "Rosenbrock RODAS4, order 4(3), L-stable, stiffly accurate, 3rd-order dense output; linear solves only."
    reference = "Hairer & Wanner, Solving ODEs II (1996), VI.4; the RODAS code"


class Rodas4P(Rosenbrock):
    name = "rodas4p"
    tableau = coefficients.RODAS4P
    summary = ("Rosenbrock RODAS4P, order 4(3), stiffly accurate, 3rd-order dense output; keeps order 3 on "
               "Prothero-Robinson-type stiff problems where RODAS4 suffers order reduction.")
    reference = "Steinebach, Preprint 1741, TH Darmstadt (1995); Hairer & Wanner, Solving ODEs II, VI.4"


class Rodas5P(Rosenbrock):
    name = "rodas5p"
    tableau = coefficients.RODAS5P
    summary = ("Rosenbrock RODAS5P, order 5(4), stiffly accurate, 4th-order dense output; order 3 on stiff "
               "Prothero-Robinson (as rodas4p; rodas4 drops to 1), index-1 DAEs; Julia's recommended "
               "Rosenbrock default.")
    reference = "Steinebach, BIT Numer. Math. 63 (2023) 27"


IMPLICIT = [ImplicitEuler, Trapezoid, Rodas4, Rodas4P, Rodas5P, BDF]

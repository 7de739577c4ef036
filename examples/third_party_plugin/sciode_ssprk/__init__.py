"""sciode-ssprk: Shu & Osher's SSPRK3 as a sciode solver plugin, written two ways.

``ssprk3`` implements ``step`` by hand (any one-step method can); ``ssprk3_tableau``
is the same method declared as data, a Butcher tableau on sciode's generic
Runge-Kutta stepper (``sciode_explicit.ExplicitRungeKutta``, public API).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch

import sciode
from sciode_explicit import ExplicitRungeKutta


class SSPRK3(sciode.Solver):
    """Strong-stability-preserving RK3 (Shu & Osher 1988): order 3, fixed step, 3 f calls.

    Written as convex combinations of forward Euler steps, so it keeps any
    property (positivity, TVD) that forward Euler keeps under a CFL-type limit.
    """

    name = "ssprk3"
    order = 3
    adaptive = False
    summary = "Shu-Osher SSP Runge-Kutta, order 3, fixed step."
    reference = "Shu & Osher, J. Comput. Phys. 77 (1988) 439-471"

    def step(self, rhs: sciode.RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> sciode.StepResult:
        k0 = state if state is not None else rhs(t, u)
        u1 = u + dt * k0
        u2 = 0.75 * u + 0.25 * (u1 + dt * rhs(t + dt, u1))
        u3 = u / 3 + (2 / 3) * (u2 + dt * rhs(t + 0.5 * dt, u2))
        return sciode.StepResult(u3, None, None, (k0,))

    def interpolate(self, theta, h, u0, u1, dense):  # noqa: ANN001, ANN201 - signature fixed by sciode.Solver
        """Quadratic through u0 and u1 with the slope f(u0) at the start."""
        (k0,) = dense
        return u0 + h * theta * k0 + theta.square() * (u1 - u0 - h * k0)


class SSPRK3Tableau(ExplicitRungeKutta):
    """SSPRK3 as a tableau: no interpolant given, so ``saveat`` uses the generic quadratic extension."""

    name = "ssprk3_tableau"
    tableau = sciode.ButcherTableau.from_rows(
        A=[[], [1], [Fraction(1, 4), Fraction(1, 4)]],
        b=[Fraction(1, 6), Fraction(1, 6), Fraction(2, 3)],
        c=[0, 1, Fraction(1, 2)],
        order=3,
    )
    summary = "Shu-Osher SSP Runge-Kutta, order 3, fixed step, declared as a Butcher tableau."
    reference = SSPRK3.reference


@sciode.hookimpl
def sciode_add_solvers() -> list[type]:
    return [SSPRK3, SSPRK3Tableau]

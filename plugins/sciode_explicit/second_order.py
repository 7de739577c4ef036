"""Solvers for SecondOrderODEProblem (u'' = f(v, u, p, t)): velocity Verlet and RKN.

The state is ``[v, u]`` along the last dim. Runge-Kutta-Nystrom methods are
declared as data (an RKNTableau) and driven by one stepper; velocity Verlet is
its own small stepper because its FSAL acceleration makes it cheaper (one f call
per step) and it is the symplectic workhorse for Hamiltonian dynamics.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction as F
from typing import Any

import torch

from sciode import RHS, SecondOrderODEProblem, Solver, StepResult


def _accel(rhs: RHS, t: torch.Tensor, v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    rhs.nfe += 1
    return rhs.problem.accel(v, u, rhs.p, t)


def _split(rhs: RHS, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = rhs.problem.position_size
    return state[..., :m], state[..., m:]


def _hermite(theta: torch.Tensor, h: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor,
             d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
    t2, t3 = theta * theta, theta * theta * theta
    return ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + theta) * h * d0
            + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * h * d1)


class _SecondOrderSolver(Solver):
    problem_types = (SecondOrderODEProblem,)
    adaptive = False

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        """Cubic Hermite: positions from velocities, velocities from accelerations."""
        a0, a1 = dense
        m = a0.shape[-1]
        v0, x0, v1, x1 = u0[..., :m], u0[..., m:], u1[..., :m], u1[..., m:]
        return torch.cat([_hermite(theta, h, v0, v1, a0, a1), _hermite(theta, h, x0, x1, v0, v1)], dim=-1)


class VelocityVerlet(_SecondOrderSolver):
    """Velocity Verlet (Stormer-Verlet): order 2, symplectic, one f call per step.

    Symplectic when f does not depend on v; a velocity-dependent f is evaluated
    at the half-step velocity.
    """

    name = "verlet"
    order = 2
    summary = "Velocity Verlet (Stormer-Verlet), symplectic, order 2, FSAL acceleration."
    reference = "Hairer, Lubich & Wanner, Geometric Numerical Integration, I.1.4"

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> StepResult:
        v, x = _split(rhs, u)
        a0 = state
        if a0 is not None and a0.shape[-1] != v.shape[-1]:  # f0 of the first-order form: [a, v]
            a0 = a0[..., : v.shape[-1]]
        if a0 is None:
            a0 = _accel(rhs, t, v, x)
        v_half = v + (0.5 * dt) * a0
        x1 = x + dt * v_half
        a1 = _accel(rhs, t + dt, v_half, x1)
        v1 = v_half + (0.5 * dt) * a1
        return StepResult(torch.cat([v1, x1], dim=-1), None, a1, (a0, a1))


@dataclasses.dataclass(frozen=True)
class RKNTableau:
    """A Runge-Kutta-Nystrom method for u'' = f(v, u, t).

    Stage i: U_i = u + c_i h v + h^2 sum_j Abar_ij F_j, V_i = v + h sum_j A_ij F_j;
    u1 = u + h v + h^2 sum bbar_j F_j, v1 = v + h sum b_j F_j.
    """

    c: tuple[float, ...]
    Abar: tuple[tuple[float, ...], ...]
    bbar: tuple[float, ...]
    A: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int

    @classmethod
    def from_rows(cls, c, Abar, bbar, A, b, order):  # noqa: ANN001, ANN206 - data constructor
        s = len(b)
        pad = lambda rows: tuple(tuple(float(x) for x in list(r) + [0] * (s - len(r))) for r in rows)  # noqa: E731
        return cls(tuple(map(float, c)), pad(Abar), tuple(map(float, bbar)), pad(A), tuple(map(float, b)), order)

    def check(self, tol: float = 1e-12) -> None:
        """Consistency: rows of A sum to c, rows of Abar to c^2/2, b to 1, bbar to 1/2."""
        for i, ci in enumerate(self.c):
            assert abs(sum(self.A[i]) - ci) < tol, f"RKN row {i} of A must sum to c[{i}]"
            assert abs(sum(self.Abar[i]) - ci * ci / 2) < tol, f"RKN row {i} of Abar must sum to c[{i}]^2/2"
        assert abs(sum(self.b) - 1) < tol and abs(sum(self.bbar) - 0.5) < tol


#: Nystrom's classical 4th-order method for general u'' = f(v, u, t)
NYSTROM4 = RKNTableau.from_rows(
    c=[0, F(1, 2), F(1, 2), 1],
    Abar=[[], [F(1, 8)], [F(1, 8)], [0, 0, F(1, 2)]],
    bbar=[F(1, 6), F(1, 6), F(1, 6), 0],
    A=[[], [F(1, 2)], [0, F(1, 2)], [0, 0, 1]],
    b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)],
    order=4,
)


class RungeKuttaNystrom(_SecondOrderSolver):
    """Generic RKN stepper; subclasses declare ``name`` and ``rkn``."""

    rkn: RKNTableau

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.rkn.check()
        cls.order = cls.rkn.order

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> StepResult:
        tab = self.rkn
        v, x = _split(rhs, u)
        Fs: list[torch.Tensor] = []
        for i, ci in enumerate(tab.c):
            Xi = x + (ci * dt) * v if ci else x
            Vi = v
            for j in range(i):
                if tab.Abar[i][j]:
                    Xi = Xi + (tab.Abar[i][j] * dt * dt) * Fs[j]
                if tab.A[i][j]:
                    Vi = Vi + (tab.A[i][j] * dt) * Fs[j]
            Fs.append(_accel(rhs, t + ci * dt, Vi, Xi))
        x1 = x + dt * v + sum((bb * dt * dt) * Fj for bb, Fj in zip(tab.bbar, Fs) if bb)
        v1 = v + sum((bj * dt) * Fj for bj, Fj in zip(tab.b, Fs) if bj)
        # the c = 1 stage approximates the end acceleration for dense output
        return StepResult(torch.cat([v1, x1], dim=-1), None, None, (Fs[0], Fs[-1]))


class RKN4(RungeKuttaNystrom):
    name = "rkn4"
    rkn = NYSTROM4
    summary = "Nystrom's classical 4th-order Runge-Kutta-Nystrom method (velocity-dependent f allowed)."
    reference = "Hairer, Norsett & Wanner, Solving ODEs I, II.14"


SECOND_ORDER = [VelocityVerlet, RKN4]

"""Nystrom's two-step explicit midpoint (leapfrog) method for first-order ODEs.

x_{n+2} = x_n + 2h f(x_{n+1}): order 2, one f call per step, time-reversible.
It needs the previous state, which it keeps in its solver state. The starting
step (and any step whose size differs from the previous one, such as a shortened
last step) is an explicit midpoint step, which keeps the method order 2. The
parasitic root -1 makes it weakly unstable on dissipative problems: use it for
oscillatory/conservative dynamics.
"""
from __future__ import annotations

from typing import Any

import torch

from sciode import RHS, Solver, StepResult


class Nystrom2(Solver):
    name = "nystrom2"
    order = 2
    adaptive = False
    summary = "Two-step explicit midpoint (leapfrog) x_{n+2} = x_n + 2h f(x_{n+1}); midpoint starting step."
    reference = "Hairer, Norsett & Wanner, Solving ODEs I, III.1 (explicit midpoint rule)"

    def init(self, rhs: RHS, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor | None) -> Any:
        return (None, None, f0)  # (previous state, previous step, f at the current state)

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> StepResult:
        u_prev, dt_prev, f_now = state
        k0 = f_now if f_now is not None else rhs(t, u)
        if u_prev is not None and dt_prev == dt:
            u1 = torch.add(u_prev, k0, alpha=2 * dt)
        else:  # starting step: explicit midpoint
            u_mid = torch.add(u, k0, alpha=0.5 * dt)
            u1 = torch.add(u, rhs(t + 0.5 * dt, u_mid), alpha=dt)
        return StepResult(u1, None, (u, dt, None), (k0,))

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        """Quadratic matching u0, u1 and the slope f(u0): order 2, like the method."""
        (k0,) = dense
        return u0 + h * theta * k0 + theta.square() * (u1 - u0 - h * k0)

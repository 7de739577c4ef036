"""Simplified Newton iteration on batched stage equations G(z) = 0.

One factorization of W ~ dG/dz serves every iteration (and, when the caller allows, every
step). Convergence is judged per member on the tolerance-scaled increment with the
contraction-rate test of Hairer & Wanner (Solving ODEs II, IV.8): a member has converged
when rate/(1 - rate) * ||dz|| <= tol, or when ||dz|| is at round-off level. A member
whose rate reaches ``diverge_rate``, whose increment is non-finite, or which is still
running after ``max_iters`` iterations has failed; the others are frozen once converged.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from sciode import RHS

from .linalg import Factorization


@dataclasses.dataclass
class NewtonOutcome:
    """The final iterate, which members failed (a mask broadcastable to z), the worst
    contraction rate seen per member, the number of iterations and, if any failed, why."""

    z: torch.Tensor
    failed: torch.Tensor
    rate: torch.Tensor
    iterations: int
    reason: str


def newton_tolerance(rtol: float, dtype: torch.dtype) -> float:
    """Hairer's default: max(10 eps / rtol, min(0.03, sqrt(rtol))) in tolerance-scaled units."""
    eps = torch.finfo(dtype).eps
    return max(10 * eps / rtol, min(0.03, rtol**0.5))


def newton_solve(residual: Callable[[torch.Tensor], torch.Tensor], z0: torch.Tensor, fact: Factorization,
                 rhs: RHS, scale: torch.Tensor, tol: float, max_iters: int = 7,
                 diverge_rate: float = 0.9) -> NewtonOutcome:
    """Iterate z <- z - W^-1 G(z) from ``z0`` for all members at once (no autograd)."""
    tiny = torch.finfo(z0.dtype).tiny
    floor = 50 * torch.finfo(z0.dtype).eps / rhs.rtol
    z, prev = z0, None
    converged = failed = rate = None
    reason = ""
    k = 0
    for k in range(1, max_iters + 1):
        dz = fact.solve(residual(z).neg_(), rhs)
        d = rhs.norm(dz / scale)
        finite = torch.isfinite(d)
        if prev is None:
            converged = torch.zeros_like(d, dtype=torch.bool)
            failed = torch.zeros_like(converged)
            rate = torch.zeros_like(d)
            eta = torch.ones_like(d)
            diverging = torch.zeros_like(converged)
        else:
            r = d / prev.clamp_min(tiny)
            eta = r / (1 - r).clamp_min(tiny)
            diverging = r >= diverge_rate
        running = ~converged & ~failed
        if prev is not None:
            rate = torch.where(running & finite, torch.maximum(rate, r), rate)
        z = torch.where(running, z + dz, z)
        ok = finite & ((eta * d <= tol) | (d <= floor))
        bad = ~finite | (diverging & ~ok)
        if bool((running & bad).any()):
            reason = ("the Newton increment became non-finite" if bool((running & ~finite).any())
                      else f"the Newton iteration diverged (contraction rate >= {diverge_rate})")
        converged = converged | (running & ok)
        failed = failed | (running & bad)
        prev = d
        if not bool((~converged & ~failed).any()):
            break
    stuck = ~converged & ~failed
    if bool(stuck.any()):
        reason = reason or f"the Newton iteration did not converge in {max_iters} iterations"
    return NewtonOutcome(z, failed | stuck, rate, k, reason)

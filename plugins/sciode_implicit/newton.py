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

import numpy as np
import torch

from sciode import RHS

from .linalg import Factorization


@dataclasses.dataclass
class NewtonOutcome:
    """The final iterate, which members failed (a bool tensor broadcastable to z), the worst
    contraction rate seen per member (host array), the number of iterations and, if any
    failed, why. ``any_failed`` and ``max_rate`` are the host-side summaries callers branch on."""

    z: torch.Tensor
    failed: torch.Tensor
    rate: np.ndarray
    iterations: int
    reason: str
    any_failed: bool = False
    max_rate: float = 0.0


def newton_tolerance(rtol: float, dtype: torch.dtype) -> float:
    """Hairer's default: max(10 eps / rtol, min(0.03, sqrt(rtol))) in tolerance-scaled units."""
    eps = torch.finfo(dtype).eps
    return max(10 * eps / rtol, min(0.03, rtol**0.5))


def newton_solve(residual: Callable[[torch.Tensor | None], torch.Tensor], z0: torch.Tensor | None,
                 fact: Factorization, rhs: RHS, scale: torch.Tensor, tol: float, max_iters: int = 7,
                 diverge_rate: float = 0.9) -> NewtonOutcome:
    """Iterate z <- z - W^-1 G(z) from ``z0`` for all members at once (no autograd).

    ``z0=None`` starts from zero, and ``residual(None)`` is then G(0), which the caller computes
    without the zero tensor's arithmetic. The tensor work per iteration is the residual, the
    solve and one norm; the convergence bookkeeping runs on the per-member norms on the host
    (one transfer per iteration, where the test needs a host decision anyway), and the iterate
    is masked only when some member has stopped while others run.
    """
    tiny = np.finfo(np.float64).tiny
    floor = 50 * torch.finfo(scale.dtype).eps / rhs.rtol
    weight = scale.reciprocal()
    z, prev, rate = z0, None, np.zeros(())
    converged = failed = np.zeros((), dtype=bool)
    reason = ""
    k = 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k in range(1, max_iters + 1):
            step = fact.solve(residual(z), rhs)  # z - step is the next iterate
            d = rhs.norm(step * weight).cpu().numpy().astype(np.float64)
            finite = np.isfinite(d)
            running = ~(converged | failed)
            if prev is None:  # no contraction rate yet: the increment alone must be small
                ok = finite & ((d <= tol) | (d <= floor))
                bad = ~finite
            else:
                r = d / np.maximum(prev, tiny)
                rate = np.where(running & finite, np.maximum(rate, r), rate)
                ok = finite & ((r / np.maximum(1 - r, tiny) * d <= tol) | (d <= floor))
                bad = ~finite | ((r >= diverge_rate) & ~ok)
            if z is None:  # the first iteration: every member is running
                z = step.neg()
            else:
                z = z - step if running.all() else torch.where(torch.as_tensor(running, device=z.device), z - step, z)
            if (running & bad).any():
                reason = ("the Newton increment became non-finite" if (running & ~finite).any()
                          else f"the Newton iteration diverged (contraction rate >= {diverge_rate})")
            converged = converged | (running & ok)
            failed = failed | (running & bad)
            prev = d
            if (converged | failed).all():
                break
    stuck = ~converged & ~failed
    if stuck.any():
        reason = reason or f"the Newton iteration did not converge in {max_iters} iterations"
    failed = failed | stuck
    return NewtonOutcome(z, torch.as_tensor(failed, device=z.device), np.broadcast_to(rate, failed.shape), k, reason,
                         bool(failed.any()), float(rate.max(initial=0.0)))

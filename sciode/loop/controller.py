"""Step-size control: the PI controller and the initial step guess.

Both work on per-member tensors (the clock shape: 0-d for a shared step,
``(*batch, 1)`` for per-member stepping), so one code path serves both, and they
run under ``no_grad``: step sizes are decisions, not differentiable quantities.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

__all__ = ["PIController", "initial_step", "rms_norm"]


def rms_norm(x: torch.Tensor, member_dims: int) -> torch.Tensor:
    """Root-mean-square over the dims that are not member dims (keeping them as size 1)."""
    dims = tuple(range(member_dims, x.ndim))
    count = math.prod(x.shape[member_dims:])
    return torch.linalg.vector_norm(x, dim=dims, keepdim=member_dims > 0).mul_(1.0 / math.sqrt(count))


@dataclasses.dataclass(frozen=True)
class PIController:
    """Proportional-integral step-size controller (Gustafsson; Hairer & Wanner II.IV.2).

    factor = safety * err**(-beta1/k) * err_prev**(beta2/k), with k one more than
    the order of the error estimate, clamped to [min_factor, max_factor]; after a
    rejection the step never grows. Non-finite errors shrink by ``min_factor``.
    The defaults are OrdinaryDiffEq.jl's general ones (exponents 0.14 and 0.08 at
    k = 5): smooth and cautious, so the achieved error sits well below rtol. When
    ``solve`` is given no controller it takes the solver's ``pi_coefficients``:
    dopri5 carries Hairer's DOPRI5 choice ``PIController(0.85, 0.2)`` (fewer steps at
    the same rtol, a larger error; OrdinaryDiffEq.jl's DP5 default too), and
    ``PIController(1.0, 0.0)`` is the plain integral controller of torchdiffeq,
    scipy and diffrax.
    """

    beta1: float = 0.7
    beta2: float = 0.4
    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0

    def factor(self, err: torch.Tensor, err_prev: torch.Tensor, accept: torch.Tensor, k: int) -> torch.Tensor:
        finite = torch.isfinite(err)
        e = torch.where(finite, err, 1.0).clamp_min(1e-10)
        # exp(log) rather than pow: CPU pow with a fractional exponent rounds differently in its vectorized
        # and scalar paths, so a member's factor would depend on its position in the batch (compaction.py)
        f = torch.log(e).mul_(-self.beta1 / k).add_(torch.log(err_prev), alpha=self.beta2 / k).exp_().mul_(self.safety)
        f = torch.where(accept, f.clamp(self.min_factor, self.max_factor), f.clamp(self.min_factor, 1.0))
        return torch.where(finite, f, self.min_factor)


    def factor_scalar(self, err: float, err_prev: float, accept: bool, k: int) -> float:
        """The same rule on Python floats, for a clock shared by the whole batch (the same operations
        in the same order, so a compiled block of steps takes the same step sizes)."""
        if not math.isfinite(err):
            return self.min_factor
        f = max(err, 1e-10) ** (-self.beta1 / k) * err_prev ** (self.beta2 / k) * self.safety
        return min(max(f, self.min_factor), self.max_factor if accept else 1.0)


@torch.no_grad()
def initial_step(rhs: Callable, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor, order: int,
                 rtol: float, atol: float, norm: Callable, direction: float, span: float) -> torch.Tensor:
    """Hairer, Norsett & Wanner's starting step (Solving ODEs I, II.4): one extra f call."""
    scale = u0.abs().mul(rtol).add(atol)
    d0, d1 = norm(u0 / scale), norm(f0 / scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    h0 = h0.clamp_max(span)
    f1 = rhs(t0 + direction * h0, u0 + (direction * h0) * f0)
    d2 = norm((f1 - f0) / scale) / h0
    dmax = torch.maximum(d1, d2)
    h1 = torch.where(dmax <= 1e-15, (h0 * 1e-3).clamp_min(1e-6), (0.01 / dmax).pow(1.0 / (order + 1)))
    return torch.minimum(100 * h0, h1).clamp_max(span) * direction

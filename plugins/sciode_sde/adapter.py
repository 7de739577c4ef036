"""Adapters from sciode's conventions to torchsde's: internal to the plugin.

sciode writes ``f(u, p, t)`` and ``g(u, p, t)`` on states of shape ``(*batch, n)``;
torchsde wants an object with ``f(t, y)`` / ``g(t, y)`` on ``(B, n)`` and a noise
layout per noise type. ``TorchsdeSDE`` reshapes between the two and counts calls;
``CountingBrownian`` counts the Brownian queries of the forward pass (one per step
for every torchsde method) so ``Solution.stats`` reports measured step counts.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchsde import BaseBrownian

import sciode


def expected_g_shape(noise: str, batch: tuple[int, ...], n: int, noise_dim: int | None) -> tuple[int, ...]:
    """The shape ``g`` must return for the declared noise type."""
    if noise in ("diagonal", "additive"):
        return (*batch, n)
    if noise == "scalar":
        return (*batch, n, 1)
    return (*batch, n, int(noise_dim))


def brownian_size(noise: str, n: int, noise_dim: int | None) -> int:
    """How many Brownian motions drive one member."""
    if noise in ("diagonal", "additive"):
        return n
    return 1 if noise == "scalar" else int(noise_dim)


class TorchsdeSDE(nn.Module):
    """The problem's drift and diffusion as a torchsde SDE on flattened members ``(B, n)``.

    f and g are registered as submodules when they are nn.Modules, so torchsde's
    adjoint sees their parameters. Additive noise (``g`` shaped like ``u``) is passed
    on as a diagonal matrix, which is torchsde's layout for additive noise.
    """

    def __init__(self, problem: sciode.SDEProblem, member_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.drift, self.diffusion, self.p = problem.f, problem.g, problem.p
        self.noise_type = problem.noise
        self.sde_type = problem.sde_type
        self.member_shape = tuple(member_shape)
        self.n = problem.state_size
        self.nfe = 0
        self.nfe_g = 0

    def _members(self, t: Any, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.as_tensor(t, dtype=y.dtype, device=y.device), y.reshape(*self.member_shape, self.n)

    def f(self, t: Any, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        t, u = self._members(t, y)
        return self.drift(u, self.p, t).reshape(y.shape)

    def g(self, t: Any, y: torch.Tensor) -> torch.Tensor:
        self.nfe_g += 1
        t, u = self._members(t, y)
        out = self.diffusion(u, self.p, t)
        if self.noise_type == "diagonal":
            return out.reshape(y.shape)
        if self.noise_type == "additive":
            return torch.diag_embed(out.reshape(y.shape))
        return out.reshape(y.shape[0], self.n, -1)


def check_vector_fields(problem: sciode.SDEProblem, u0: torch.Tensor) -> None:
    """Evaluate f and g once at (t0, u0) and raise ProblemError if a shape or dtype is wrong."""
    t0 = torch.as_tensor(problem.tspan[0], dtype=u0.dtype, device=u0.device)
    batch, n = tuple(u0.shape[:-1]), u0.shape[-1]
    with torch.no_grad():
        drift = problem.f(u0, problem.p, t0)
        diffusion = problem.g(u0, problem.p, t0)
    for name, value, shape, what in (
        ("f", drift, (*batch, n), "the shape of u0"),
        ("g", diffusion, expected_g_shape(problem.noise, batch, n, problem.noise_dim),
         f"(*batch, n{'' if problem.noise in ('diagonal', 'additive') else ', m'}) for noise={problem.noise!r}"),
    ):
        if not isinstance(value, torch.Tensor):
            raise sciode.ProblemError(f"{name} must return a tensor; it returned {type(value).__name__}")
        if tuple(value.shape) != shape:
            extra = ""
            if name == "g" and problem.noise in ("diagonal", "additive") and value.ndim == len(shape) + 1:
                extra = "; a matrix-valued g needs noise='general' (with noise_dim) or noise='scalar'"
            raise sciode.ProblemError(f"{name} returned shape {tuple(value.shape)}; expected {shape}, {what}{extra}")
        if value.dtype != u0.dtype:
            raise sciode.ProblemError(f"{name} returned dtype {value.dtype}; expected u0's dtype {u0.dtype}")


class CountingBrownian(BaseBrownian):
    """A Brownian motion that forwards to another and counts increment queries."""

    __slots__ = ("base", "calls")

    def __init__(self, base: BaseBrownian) -> None:
        self.base = base
        self.calls = 0

    def __call__(self, ta: Any, tb: Any = None, return_U: bool = False, return_A: bool = False) -> Any:
        self.calls += 1
        return self.base(ta, tb, return_U=return_U, return_A=return_A)

    def __repr__(self) -> str:
        return f"CountingBrownian({self.base!r})"

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def shape(self) -> Any:
        return self.base.shape

    @property
    def levy_area_approximation(self) -> str:
        return self.base.levy_area_approximation

"""ODE-Net (Chen et al. 2018): a residual stack replaced by one ODE block.

``ODEBlock(func, tspan)`` maps x to the solution at t1 of dx/dt = func(x, p, t) with
x(t0) = input; it fits anywhere an ``nn.Module`` does (e.g. inside ``nn.Sequential``).
Inputs of any shape ``(batch, ...)`` are flattened to ``(batch, n)`` for the core
loop and ``func`` sees them in their own shape. Work is counted per call: the
forward NFE comes from the solve's stats, the backward NFE from counting calls of
``func`` while gradients are computed (non-zero only for adjoint-type sensitivities,
which solve again backwards; plain autograd replays the recorded graph).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

import sciode

from ._solving import configure_solve, solve_to_end

__all__ = ["ODEBlock", "ConcatConv2d", "ConvODEFunc"]

DEFAULT_TOLERANCES = dict(rtol=1e-3, atol=1e-3)


class _Counter:
    """Calls of a vector field, shared between an ODEBlock and its per-solve wrappers."""

    def __init__(self) -> None:
        self.calls = 0


class _Shaped(nn.Module):
    """func on the input's own shape, seen by the loop as a flat (batch, n) field."""

    def __init__(self, func: nn.Module, shape: torch.Size, counter: _Counter) -> None:
        super().__init__()
        self.func = func
        self.shape = shape
        self.counter = counter

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        self.counter.calls += 1
        out = self.func(u.reshape(self.shape), p, t)
        return out.reshape(u.shape)


class ODEBlock(nn.Module):
    """Continuous-depth block: x -> x(t1) where dx/dt = func(x, p, t), x(t0) = input.

    ``solver``/``sensealg``: any registered name or instance; ``solve_options`` go to
    ``sciode.solve`` (default rtol = atol = 1e-3, as for Chen et al.'s classifier).
    After a forward pass ``nfe_forward`` holds the solve's NFE; after the backward
    pass ``nfe_backward`` holds the calls of ``func`` made while differentiating.
    """

    name = "ode_block"

    def __init__(self, func: nn.Module, tspan: tuple[float, float] = (0.0, 1.0), solver: Any = "dopri5",
                 sensealg: Any = None, **solve_options: Any) -> None:
        super().__init__()
        if not callable(func):
            raise sciode.ProblemError(f"func must be callable as func(x, p, t); got {type(func).__name__}")
        configure_solve(self, tspan, solver, sensealg, DEFAULT_TOLERANCES, solve_options)
        self.func = func
        self._counter = _Counter()
        self._calls_after_forward = 0
        self.nfe_forward = 0
        self.stats: dict[str, int] = {}

    @property
    def nfe_backward(self) -> int:
        """Calls of ``func`` since the last forward pass ended (read it after ``backward()``)."""
        return self._counter.calls - self._calls_after_forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 2:
            raise sciode.ProblemError(f"x must be a tensor of shape (batch, ...); got "
                                      f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        field = _Shaped(self.func, x.shape, self._counter)
        u1, self.stats = solve_to_end(field, x.reshape(x.shape[0], -1), self.tspan, self.solver, self.sensealg,
                                      self.solve_options, "ODEBlock")
        self.nfe_forward = self.stats["nfe"]
        self._calls_after_forward = self._counter.calls
        return u1.reshape(x.shape)

    def extra_repr(self) -> str:
        solver = getattr(self.solver, "name", self.solver)
        sens = getattr(self.sensealg, "name", self.sensealg)
        return f"tspan={self.tspan}, solver={solver!r}, sensealg={sens!r}"


class ConcatConv2d(nn.Module):
    """A 3x3 convolution that sees time as an extra constant input channel."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in + 1, channels_out, kernel_size=3, padding=1)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        tt = t.reshape(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[2:])
        return self.conv(torch.cat([tt, x], dim=1))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels), channels)


class ConvODEFunc(nn.Module):
    """Chen et al.'s ODE-Net vector field: norm, ReLU, time-conv, norm, ReLU, time-conv, norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = _norm(channels), _norm(channels), _norm(channels)
        self.conv1, self.conv2 = ConcatConv2d(channels, channels), ConcatConv2d(channels, channels)

    def forward(self, x: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        out = self.conv1(t, torch.relu(self.norm1(x)))
        out = self.conv2(t, torch.relu(self.norm2(out)))
        return self.norm3(out)

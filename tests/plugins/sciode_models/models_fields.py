"""Shared helpers for the models plugin tests: small fields with known flows."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import sciode


class LinearField(nn.Module):
    """dz/dt = A z: the flow is z(t) = expm(A t) z(0), the log-det is tr(A) t."""

    def __init__(self, A: torch.Tensor) -> None:
        super().__init__()
        self.A = nn.Parameter(A.clone())

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        return u @ self.A.T


class TanhField(nn.Module):
    """A small nonlinear time-dependent field: tanh(W z + b t)."""

    def __init__(self, dim: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.W = nn.Parameter(torch.randn(dim, dim, generator=g, dtype=dtype) * 0.8)
        self.b = nn.Parameter(torch.randn(dim, generator=g, dtype=dtype))

    def forward(self, u: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(u @ self.W.T + self.b * t)


def registered_sensitivity(name: str) -> Any:
    """A pytest.param that is skipped while the sensitivity ``name`` is not registered."""
    return pytest.param(name, marks=pytest.mark.skipif(
        name not in sciode.sensitivities(),
        reason=f"sensitivity {name!r} is not registered yet (plugins/sciode_sensitivity is being written)"))

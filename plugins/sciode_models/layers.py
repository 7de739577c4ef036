"""Time-dependent layers for vector fields f(u, p, t).

A concat-squash layer (Grathwohl et al. 2019, FFJORD) lets the time enter every
layer: out = (W x + b) * sigmoid(a t + c) + d t. ``t`` may be a 0-d tensor (the
batch shares one clock) or shaped ``(*batch, 1)`` (per-member stepping); both
broadcast against the batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["ConcatSquashLinear", "ConcatSquashMLP", "ACTIVATIONS"]

ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "relu": nn.ReLU, "swish": nn.SiLU}


def time_column(t: Any, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a tensor that broadcasts as one column against ``like`` of shape (*batch, n)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(1) if t.ndim == 0 else t


class ConcatSquashLinear(nn.Module):
    """Linear map gated and shifted by time: (W x + b) * sigmoid(a t + c) + d t."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.gate = nn.Linear(1, dim_out)
        self.shift = nn.Linear(1, dim_out, bias=False)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tc = time_column(t, x)
        return self.linear(x) * torch.sigmoid(self.gate(tc)) + self.shift(tc)


class ConcatSquashMLP(nn.Module):
    """A time-dependent MLP vector field f(u, p, t) -> du/dt (``p`` is ignored).

    ``hidden`` gives the widths of the hidden layers; the activation follows every
    hidden layer. The default (tanh, 3 x 64) is the FFJORD toy-density network.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64, 64), activation: str = "tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        widths = [dim, *hidden, dim]
        self.layers = nn.ModuleList(ConcatSquashLinear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = ACTIVATIONS[activation]()

    def forward(self, u: torch.Tensor, p: Any = None, t: Any = 0.0) -> torch.Tensor:
        x = u
        for i, layer in enumerate(self.layers):
            x = layer(t, x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x

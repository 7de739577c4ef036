"""Image classifiers of Chen et al. (2018) Table 1: ODE-Net and its two baselines.

All three share the input stage and the head; only the middle differs:
ODE-Net one ODE block, ResNet ``blocks`` residual blocks of the same width, the MLP
no convolutions at all. Sized by default for 8x8 digits (``load_digits``): the input
stage maps 1x8x8 to ``channels``x4x4.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .odenet import ConvODEFunc, ODEBlock, _norm

__all__ = ["ODENetClassifier", "ResNetClassifier", "MLPClassifier", "parameter_count"]


def parameter_count(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def downsampling(in_channels: int, channels: int) -> nn.Sequential:
    """conv 3x3, then norm-ReLU-conv 4x4 stride 2: halves the side (8x8 -> 4x4)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, 1, padding=1),
        _norm(channels), nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 4, 2, padding=1),
    )


def head(channels: int, num_classes: int) -> nn.Sequential:
    """norm-ReLU, global average pool, linear to class logits."""
    return nn.Sequential(_norm(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, num_classes))


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(ReLU(norm(conv(ReLU(norm(x))))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  _norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ODENetClassifier(nn.Sequential):
    """Downsampling, one ODE block (``ConvODEFunc``), head: Chen et al.'s ODE-Net."""

    name = "odenet"

    def __init__(self, channels: int = 32, num_classes: int = 10, in_channels: int = 1,
                 tspan: tuple[float, float] = (0.0, 1.0), solver: Any = "dopri5", sensealg: Any = None,
                 **solve_options: Any) -> None:
        super().__init__(downsampling(in_channels, channels),
                         ODEBlock(ConvODEFunc(channels), tspan, solver, sensealg, **solve_options),
                         head(channels, num_classes))

    @property
    def ode_block(self) -> ODEBlock:
        return self[1]


class ResNetClassifier(nn.Sequential):
    """The same downsampling and head around ``blocks`` residual blocks of the same width."""

    def __init__(self, channels: int = 32, num_classes: int = 10, in_channels: int = 1, blocks: int = 6) -> None:
        super().__init__(downsampling(in_channels, channels), *[ResBlock(channels) for _ in range(blocks)],
                         head(channels, num_classes))


class MLPClassifier(nn.Sequential):
    """One hidden layer on the flattened image (Chen et al.'s "1-layer MLP")."""

    def __init__(self, inputs: int = 64, hidden: int = 300, num_classes: int = 10) -> None:
        super().__init__(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


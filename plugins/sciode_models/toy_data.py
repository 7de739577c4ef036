"""The 2-D toy densities of the FFJORD paper, generated in code (no downloads).

``toy_sample(name, n, generator)`` draws ``n`` points as a float tensor ``(n, 2)``.
The densities follow the definitions used by Grathwohl et al. (2019) (same shapes,
scales and noise levels), written here with torch random streams so a seeded
``torch.Generator`` reproduces a data set exactly. ``toy_log_density`` gives the
exact density where it has a closed form (8gaussians, checkerboard), and
``toy_entropy`` the differential entropy -E[log p(x)] estimated from it by Monte Carlo.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["TOY_DATASETS", "toy_sample", "toy_log_density", "toy_entropy"]

Generator = torch.Generator | None


def _rand(n: int, g: Generator, *shape: int) -> torch.Tensor:
    return torch.rand(n, *shape, generator=g, dtype=torch.float64)


def _randn(n: int, g: Generator, *shape: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=g, dtype=torch.float64)


def _polar(radius: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)


# 8gaussians: eight components on a circle of radius 4, std 0.5, everything scaled by 1/sqrt(2)
_EIGHT_RADIUS, _EIGHT_STD, _EIGHT_SCALE = 4.0, 0.5, 1.0 / math.sqrt(2.0)


def _eight_centers() -> torch.Tensor:
    return _polar(torch.full((8,), _EIGHT_RADIUS, dtype=torch.float64),
                  torch.arange(8, dtype=torch.float64) * (math.pi / 4))


def eight_gaussians(n: int, g: Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g)
    return (_eight_centers()[k] + _EIGHT_STD * _randn(n, g, 2)) * _EIGHT_SCALE


def pinwheel(n: int, g: Generator) -> torch.Tensor:
    """Five arms: radial/tangential Gaussian noise, bent by an exponential twist."""
    arms, radial_std, tangential_std, rate = 5, 0.3, 0.05, 0.25
    k = torch.randint(0, arms, (n,), generator=g)
    feats = _randn(n, g, 2) * torch.tensor([radial_std, tangential_std], dtype=torch.float64)
    feats[:, 0] += 1.0
    angle = k * (2 * math.pi / arms) + rate * torch.exp(feats[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    x = torch.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], dim=-1)
    return 2.0 * x


def two_spirals(n: int, g: Generator) -> torch.Tensor:
    """Two interleaved Archimedean spirals (1.5 turns), jittered, plus Gaussian noise 0.1."""
    s = torch.sqrt(_rand(n, g)) * (3 * math.pi)
    arm = torch.stack([-torch.cos(s) * s, torch.sin(s) * s], dim=-1) + 0.5 * _rand(n, g, 2)
    sign = torch.where(_rand(n, g) < 0.5, -1.0, 1.0).to(torch.float64).unsqueeze(-1)
    return sign * arm / 3.0 + 0.1 * _randn(n, g, 2)


def checkerboard(n: int, g: Generator) -> torch.Tensor:
    """Uniform on the 8 dark squares (side 2) of a 4x4 board covering [-4, 4]^2."""
    x1 = 4.0 * _rand(n, g) - 2.0
    x2 = _rand(n, g) - 2.0 * torch.randint(0, 2, (n,), generator=g).to(torch.float64) + torch.floor(x1).remainder(2)
    return 2.0 * torch.stack([x1, x2], dim=-1)


def moons(n: int, g: Generator) -> torch.Tensor:
    """Two interleaving half circles (noise 0.1), scaled by 2 and centred."""
    angle = math.pi * _rand(n, g)
    upper = _rand(n, g) < 0.5
    x = torch.where(upper, torch.cos(angle), 1.0 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    pts = torch.stack([x, y], dim=-1) + 0.1 * _randn(n, g, 2)
    return 2.0 * pts + torch.tensor([-1.0, -0.2], dtype=torch.float64)


def circles(n: int, g: Generator) -> torch.Tensor:
    """Two concentric circles (radii 1 and 0.5, noise 0.08), scaled by 3."""
    radius = torch.where(_rand(n, g) < 0.5, 1.0, 0.5).to(torch.float64)
    pts = _polar(radius, 2 * math.pi * _rand(n, g)) + 0.08 * _randn(n, g, 2)
    return 3.0 * pts


def rings(n: int, g: Generator) -> torch.Tensor:
    """Four concentric rings (radii 1, 0.8, 0.55, 0.25), scaled by 3, noise 0.08."""
    radii = torch.tensor([1.0, 0.8, 0.55, 0.25], dtype=torch.float64)
    radius = radii[torch.randint(0, 4, (n,), generator=g)]
    return 3.0 * _polar(radius, 2 * math.pi * _rand(n, g)) + 0.08 * _randn(n, g, 2)


def swissroll(n: int, g: Generator) -> torch.Tensor:
    """The (x, z) plane of a swiss roll with unit Gaussian noise, scaled by 1/5."""
    s = 1.5 * math.pi * (1.0 + 2.0 * _rand(n, g))
    pts = torch.stack([s * torch.cos(s), s * torch.sin(s)], dim=-1) + _randn(n, g, 2)
    return pts / 5.0


TOY_DATASETS: dict[str, Callable[[int, Generator], torch.Tensor]] = {
    "8gaussians": eight_gaussians, "pinwheel": pinwheel, "2spirals": two_spirals, "checkerboard": checkerboard,
    "moons": moons, "circles": circles, "rings": rings, "swissroll": swissroll,
}


def _check_name(name: str) -> None:
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; choose one of {sorted(TOY_DATASETS)}")


def toy_sample(name: str, n: int, generator: Generator = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` points of the toy density ``name`` as a tensor of shape ``(n, 2)``."""
    _check_name(name)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    return TOY_DATASETS[name](n, generator).to(dtype)


def _eight_log_density(x: torch.Tensor) -> torch.Tensor:
    std = _EIGHT_STD * _EIGHT_SCALE
    centers = (_eight_centers() * _EIGHT_SCALE).to(x)
    sq = (x.unsqueeze(-2) - centers).square().sum(-1) / (2 * std**2)
    return torch.logsumexp(-sq, dim=-1) - math.log(8) - math.log(2 * math.pi * std**2)


def _checkerboard_log_density(x: torch.Tensor) -> torch.Tensor:
    cell = torch.floor(x / 2.0)
    inside = (x.abs() <= 4.0).all(-1) & ((cell[..., 0] + cell[..., 1]).remainder(2) == 0)
    return torch.full_like(x[..., 0], -math.log(32.0)).masked_fill(~inside, -math.inf)


_LOG_DENSITIES = {"8gaussians": _eight_log_density, "checkerboard": _checkerboard_log_density}


def toy_log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x) where it has a closed form (8gaussians, checkerboard)."""
    _check_name(name)
    if name not in _LOG_DENSITIES:
        raise ValueError(f"toy dataset {name!r} has no closed-form density; known: {sorted(_LOG_DENSITIES)}")
    return _LOG_DENSITIES[name](x.to(torch.float64))


def toy_entropy(name: str, n: int = 200_000, seed: int = 0) -> float | None:
    """-E[log p(x)] in nats by Monte Carlo on the exact density, or None where unknown."""
    _check_name(name)
    if name not in _LOG_DENSITIES:
        return None
    x = toy_sample(name, n, torch.Generator().manual_seed(seed), dtype=torch.float64)
    return float(-toy_log_density(name, x).mean())

"""The in-code toy densities and the digits split."""
from __future__ import annotations

import math

import pytest
import torch

from sciode_models import TOY_DATASETS, load_digits_split, toy_entropy, toy_log_density, toy_sample


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_toy_samples_are_reproducible_finite_and_two_dimensional(name: str) -> None:
    a = toy_sample(name, 500, torch.Generator().manual_seed(4))
    b = toy_sample(name, 500, torch.Generator().manual_seed(4))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert bool(torch.isfinite(a).all())
    torch.testing.assert_close(a, b)
    assert 0.5 < float(a.std()) < 3.0 and float(a.abs().max()) < 6.0


def test_closed_form_densities() -> None:
    board = toy_sample("checkerboard", 5000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(toy_log_density("checkerboard", board),
                               torch.full((5000,), -math.log(32), dtype=torch.float64))
    assert toy_log_density("checkerboard", torch.tensor([[1.0, 3.0]])).isneginf().all()  # a light square
    axis = torch.linspace(-6, 6, 301, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    mass = toy_log_density("8gaussians", grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert abs(float(mass) - 1.0) < 1e-3
    assert abs(toy_entropy("checkerboard", n=1000) - math.log(32)) < 1e-12
    assert abs(toy_entropy("8gaussians", n=50_000) - 2.83) < 0.02
    assert toy_entropy("2spirals") is None


def test_unknown_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown toy dataset 'spiral'"):
        toy_sample("spiral", 10)
    with pytest.raises(ValueError, match="no closed-form density"):
        toy_log_density("moons", torch.zeros(1, 2))


def test_digits_split_is_fixed_and_stratified() -> None:
    x_tr, y_tr, x_te, y_te = load_digits_split()
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert float(x_tr.min()) >= 0.0 and float(x_tr.max()) <= 1.0
    assert torch.bincount(y_te).min() >= 35
    torch.testing.assert_close(load_digits_split()[3], y_te)

"""ODEBlock and the digit classifiers: correctness of the block, NFE counting, training, errors."""
from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from models_fields import registered_sensitivity
from torch import nn

import sciode
from sciode_models import ConcatConv2d, ConvODEFunc, MLPClassifier, ODEBlock, ODENetClassifier, ResNetClassifier


class Decay(nn.Module):
    """dx/dt = -k x on inputs of any shape."""

    def __init__(self) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, x: torch.Tensor, p: Any, t: torch.Tensor) -> torch.Tensor:
        return -self.k * x


def test_block_solves_the_ode_on_image_shaped_input_inside_sequential() -> None:
    block = ODEBlock(Decay(), tspan=(0.0, 2.0), rtol=1e-10, atol=1e-10)
    model = nn.Sequential(nn.Identity(), block)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    out = model(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x * math.exp(-2.0), rtol=1e-8, atol=1e-10)
    assert block.nfe_forward == block.stats["nfe"] > 0


def test_gradient_reaches_func_parameters_and_backward_nfe_is_counted() -> None:
    block = ODEBlock(Decay(), rtol=1e-10, atol=1e-10)
    x = torch.randn(5, 3, dtype=torch.float64)
    block(x).sum().backward()
    # d/dk sum(x e^{-k}) = -sum(x) e^{-1}
    torch.testing.assert_close(block.func.k.grad, -x.sum() * math.exp(-1.0), rtol=1e-7, atol=1e-9)
    assert block.nfe_backward == 0  # plain autograd replays the graph; it does not call func again


@pytest.mark.parametrize("sensealg", [registered_sensitivity("adjoint")])
def test_adjoint_backward_calls_func(sensealg: str) -> None:
    block = ODEBlock(Decay(), sensealg=sensealg, rtol=1e-8, atol=1e-8)
    block(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
    assert block.nfe_backward > 0
    torch.testing.assert_close(block.func.k.grad.abs() > 0, torch.tensor(True))


def test_time_enters_conv_layers_for_shared_and_per_member_clocks() -> None:
    layer = ConcatConv2d(2, 3)
    x = torch.randn(4, 2, 4, 4)
    shared = layer(torch.tensor(0.5), x)
    per_member = layer(torch.full((4, 1), 0.5), x)
    torch.testing.assert_close(shared, per_member)
    assert not torch.allclose(layer(torch.tensor(0.0), x), shared)


def test_classifiers_shapes_and_one_training_step_lowers_the_loss() -> None:
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    for model in (ODENetClassifier(8), ResNetClassifier(8, blocks=2), MLPClassifier(64, 32)):
        assert model(x).shape == (32, 10)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            assert float(nn.functional.cross_entropy(model(x), y)) < float(loss)


def test_odenet_is_registered_and_uses_any_solver_by_name() -> None:
    assert {"odenet", "ode_block", "cnf", "ffjord"} <= set(sciode.models())
    model = ODENetClassifier(8, solver="rk4", dt=0.25)
    model(torch.rand(2, 1, 8, 8))
    # four RK4 steps of 4 evaluations; the first step reuses the loop's initial evaluation
    assert model.ode_block.nfe_forward == 4 * 4 == model.ode_block.stats["nfe"]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(sciode.ProblemError, match="unknown solver"):
        ODEBlock(ConvODEFunc(8), solver="nonesuch")
    with pytest.raises(sciode.ProblemError, match="tspan must hold two different times"):
        ODEBlock(ConvODEFunc(8), tspan=(1.0, 1.0))
    with pytest.raises(sciode.ProblemError, match=r"x must be a tensor of shape \(batch, \.\.\.\)"):
        ODEBlock(Decay())(torch.randn(3))

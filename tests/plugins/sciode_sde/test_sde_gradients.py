"""Gradients: torchsde's stochastic adjoint against backprop through the steps, on a fixed Brownian path."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import sciode


class Drift(nn.Module):
    """A drift with its own parameters (an nn.Module f: they count as parameters under every sensealg)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2).double()

    def forward(self, u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.linear(u) - p[0] * u


def _loss_and_grads(solver: str, sensealg: object, sde_type: str, dt: float) -> list[torch.Tensor]:
    torch.manual_seed(0)
    drift = Drift()
    p = torch.tensor([0.4, 0.3], dtype=torch.float64, requires_grad=True)
    u0 = torch.tensor([[0.8, -0.2]], dtype=torch.float64).repeat(32, 1).requires_grad_()
    prob = sciode.SDEProblem(drift, lambda u, p, t: p[1] * torch.sin(u) + 0.1, u0, (0.0, 1.0), p, sde_type=sde_type)
    sol = sciode.solve(prob, solver, dt=dt, seed=3, saveat=[0.5, 1.0], sensealg=sensealg)
    loss = (sol.u ** 2).mean()  # a Monte Carlo expectation over 32 paths at two times
    return list(torch.autograd.grad(loss, (p, u0, *drift.parameters())))


def _relative_errors(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[float]:
    return [float((x - y).norm() / x.norm()) for x, y in zip(a, b)]


def test_reversible_heun_adjoint_matches_backprop(sensitivity) -> None:
    """Reversible Heun's adjoint is exact for the discrete solution: agreement within 1e-4 relative (float64)."""
    backprop = _loss_and_grads("reversible_heun", None, "stratonovich", 0.01)
    adjoint = _loss_and_grads("reversible_heun", sensitivity("adjoint"), "stratonovich", 0.01)
    named = _loss_and_grads("reversible_heun", sensitivity("backprop"), "stratonovich", 0.01)
    assert max(_relative_errors(backprop, adjoint)) < 1e-4
    assert max(_relative_errors(backprop, named)) == 0.0


@pytest.mark.parametrize("solver, sde_type", [("euler_maruyama", "ito"), ("sde_midpoint", "stratonovich")])
def test_continuous_adjoint_approaches_backprop_as_dt_shrinks(solver: str, sde_type: str, sensitivity) -> None:
    """Other methods' adjoint solves the continuous adjoint SDE: its gap to backprop shrinks with dt."""
    gaps = [max(_relative_errors(_loss_and_grads(solver, None, sde_type, dt),
                                 _loss_and_grads(solver, sensitivity("adjoint"), sde_type, dt)))
            for dt in (0.05, 0.005)]
    assert gaps[1] < 0.3 * gaps[0] and gaps[1] < 1e-2, gaps

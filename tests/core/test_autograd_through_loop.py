"""With no sensealg, gradients flow by plain autograd through the loop to u0, p and f's parameters."""
import math

import pytest
import torch

import sciode


@pytest.mark.parametrize("solver,kwargs", [("rk4", dict(dt=0.01)), ("tsit5", dict(rtol=1e-10, atol=1e-12)),
                                           ("dopri5", dict(rtol=1e-10, atol=1e-12, stepping="per_member"))])
def test_gradient_of_decay_matches_analytic(solver, kwargs):
    k = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    u0 = torch.tensor([[1.5], [0.5]], dtype=torch.float64, requires_grad=True)
    prob = sciode.ODEProblem(lambda u, p, t: -p * u, u0, (0.0, 2.0), k)
    sol = sciode.solve(prob, solver, saveat=[0.0, 1.0, 2.0], **kwargs)
    loss = sol.u[-1].sum() + sol.u[1].sum()
    loss.backward()
    total = float(u0.detach().sum())
    expected_k = -2.0 * math.exp(-1.4) * total - 1.0 * math.exp(-0.7) * total
    assert k.grad.item() == pytest.approx(expected_k, rel=1e-6)
    torch.testing.assert_close(u0.grad, torch.full_like(u0, math.exp(-1.4) + math.exp(-0.7)), rtol=1e-6, atol=0)


def test_gradient_reaches_module_parameters_and_dict_p():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    unused = torch.nn.Linear(2, 2).double()
    scale = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.unused = net, unused

        def forward(self, u, p, t):
            return p["scale"] * self.net(u)

    prob = sciode.ODEProblem(Field(), torch.randn(4, 2, dtype=torch.float64), (0.0, 1.0), {"scale": scale})
    sol = sciode.solve(prob, "tsit5")
    sol.u[-1].square().sum().backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)
    assert all(p.grad is not None for p in net.parameters())
    # finite-difference check of one weight
    w = net[0].weight
    eps = 1e-6

    def loss_at(delta):
        with torch.no_grad():
            w[0, 0] += delta
            value = sciode.solve(prob, "tsit5", rtol=1e-10, atol=1e-12).u[-1].square().sum().item()
            w[0, 0] -= delta
        return value

    fd = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    assert w.grad[0, 0].item() == pytest.approx(fd, rel=1e-4)

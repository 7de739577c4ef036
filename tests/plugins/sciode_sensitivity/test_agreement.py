"""The algorithms against each other and against finite differences.

backprop and checkpointed compute the same discrete gradient (agree to 1e-10);
adjoint computes the continuous one (agrees to the solver tolerance); a loss on a
whole saveat trajectory, nn.Module parameters, dict/tuple ``p`` and parameters
that do not influence the output are covered.
"""
from __future__ import annotations

import pytest
import torch
from sens_helpers import ALGORITHMS, EXACT_TOL, SOLVERS, SOLVERS_SLOW_IMPLICIT, central_difference, grads, max_rel

import sciode
from sciode_sensitivity import Adjoint, Checkpointed


class Field(torch.nn.Module):
    """A small MLP vector field scaled by p["scale"] plus a drift p["shift"][0]; ``unused`` is never called."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 12), torch.nn.Tanh(), torch.nn.Linear(12, 2)).double()
        self.unused = torch.nn.Linear(3, 3).double()

    def forward(self, u: torch.Tensor, p: dict, t: torch.Tensor) -> torch.Tensor:
        return self.net(u) * p["scale"] + p["shift"][0] * torch.cos(t)


def setup(batch: int = 3) -> tuple[Field, dict, torch.Tensor]:
    torch.manual_seed(1)
    f = Field()
    p = {"scale": torch.tensor(0.7, dtype=torch.float64, requires_grad=True),
         "shift": (torch.tensor([0.1, -0.2], dtype=torch.float64, requires_grad=True),)}
    u0 = torch.randn(batch, 2, dtype=torch.float64, requires_grad=True)
    return f, p, u0


def trajectory_gradient(sensealg, solver: str, kwargs: dict, saveat, stepping: str = "shared") -> list[torch.Tensor]:
    f, p, u0 = setup()
    prob = sciode.ODEProblem(f, u0, (0.0, 1.2), p)
    sol = sciode.solve(prob, solver, sensealg=sensealg, saveat=saveat, stepping=stepping, **kwargs)
    weights = torch.linspace(0.5, 1.5, sol.u.shape[0], dtype=torch.float64).reshape(-1, 1, 1)
    loss = (weights * sol.u.square()).sum() + sol.u[..., 0].sum()
    return grads(loss, [u0, p["scale"], p["shift"][0], *f.parameters()])


SAVEATS = [pytest.param(None, id="every-step"), pytest.param(7, id="saveat-7"),
           pytest.param([0.05, 0.3, 0.31, 1.2], id="saveat-list")]


@pytest.mark.parametrize("saveat", SAVEATS)
@pytest.mark.parametrize("solver, kwargs", [("rk4", dict(dt=0.05)), ("tsit5", dict(rtol=1e-6, atol=1e-8)),
                                            ("dopri5", dict(rtol=1e-6, atol=1e-8))])
def test_checkpointed_equals_backprop(solver: str, kwargs: dict, saveat) -> None:
    reference = trajectory_gradient("backprop", solver, kwargs, saveat)
    for sens in ("checkpointed", Checkpointed(n_checkpoints=3)):
        for g, r in zip(trajectory_gradient(sens, solver, kwargs, saveat), reference):
            assert float((g - r).abs().max()) <= 1e-10 * max(1.0, float(r.abs().max()))


@pytest.mark.parametrize("saveat", SAVEATS)
@pytest.mark.parametrize("solver, kwargs", [("rk4", dict(dt=0.01)), ("tsit5", dict(rtol=1e-9, atol=1e-11)),
                                            ("dopri5", dict(rtol=1e-9, atol=1e-11))])
def test_whole_trajectory_loss_same_under_all_three(solver: str, kwargs: dict, saveat) -> None:
    results = [trajectory_gradient(sens, solver, kwargs, saveat) for sens in ALGORITHMS]
    for other in results[1:]:
        for g, r in zip(other, results[0]):
            assert float((g - r).abs().max()) <= 1e-6 * max(1.0, float(r.abs().max()))


@pytest.mark.parametrize("sensealg", [*ALGORITHMS, Checkpointed(n_checkpoints=2), Adjoint(seminorm=True)])
def test_unused_parameter_gets_zero_gradient(sensealg) -> None:
    f, p, u0 = setup()
    prob = sciode.ODEProblem(f, u0, (0.0, 1.0), p)
    loss = sciode.solve(prob, "tsit5", sensealg=sensealg, saveat=3).u.sum()
    loss.backward()
    for param in f.unused.parameters():
        assert param.grad is not None and bool((param.grad == 0).all())
    assert all(x.grad is not None and bool(x.grad.abs().sum() > 0) for x in f.net.parameters())


@pytest.mark.parametrize("sensealg", ALGORITHMS)
@pytest.mark.parametrize("solver, kwargs, tol", SOLVERS_SLOW_IMPLICIT)
def test_against_central_differences(sensealg: str, solver: str, kwargs: dict, tol: float) -> None:
    """Lotka-Volterra with a tuple p: d loss / d (u0, alpha, rest) vs central differences of the solve."""
    u0 = torch.tensor([1.0, 0.8], dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    rest = torch.tensor([0.9, 1.1, 0.7], dtype=torch.float64, requires_grad=True)

    def lv(u, p, t):
        a, (b, c, d) = p[0], p[1].unbind()
        x, y = u[..., 0], u[..., 1]
        return torch.stack([a * x - b * x * y, -c * y + d * x * y], dim=-1)

    def loss() -> torch.Tensor:
        prob = sciode.ODEProblem(lv, u0, (0.0, 1.0), (alpha, rest))
        sol = sciode.solve(prob, solver, sensealg=sensealg, saveat=4, **kwargs)
        return (sol.u * torch.tensor([1.0, -0.5], dtype=torch.float64)).sum() + sol.u[-1].square().sum()

    g = grads(loss(), [u0, alpha, rest])
    for x, gx in zip((u0, alpha, rest), g):
        assert max_rel(gx, central_difference(loss, x)) < max(tol, 1e-6)


@pytest.mark.parametrize("solver, kwargs, tol", SOLVERS)
def test_checkpointed_equals_backprop_every_family(solver: str, kwargs: dict, tol: float) -> None:
    A = torch.tensor([[-0.5, 1.2], [-1.0, -0.3]], dtype=torch.float64, requires_grad=True)
    u0 = torch.tensor([[1.0, 0.5], [0.2, -0.4]], dtype=torch.float64, requires_grad=True)
    if "rtol" in kwargs:  # exactness does not need accuracy: keep the (costly) implicit adaptive runs short
        kwargs = dict(rtol=1e-4, atol=1e-6)
    out = []
    for sens in ("backprop", "checkpointed", Checkpointed(n_checkpoints=4)):
        prob = sciode.ODEProblem(lambda u, p, t: torch.tanh(u) @ p.T, u0, (0.0, 1.0), A)
        sol = sciode.solve(prob, solver, sensealg=sens, saveat=5, **kwargs)
        out.append(grads(sol.u.square().sum(), [A, u0]))
    limit = EXACT_TOL.get(solver, 1e-10)
    for other in out[1:]:
        for g, r in zip(other, out[0]):
            assert float((g - r).abs().max()) <= limit * max(1.0, float(r.abs().max()))


@pytest.mark.parametrize("solver", ["nystrom2", "verlet", "rkn4"])
def test_checkpointed_exact_for_multistep_and_second_order(solver: str) -> None:
    """The solver state (Nystrom's previous u, a second-order problem's [v, u]) carries its adjoint through replay."""
    second = sciode.solvers()[solver].problem_types == (sciode.SecondOrderODEProblem,)
    w = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    out = []
    for sens in ("backprop", "checkpointed", Checkpointed(n_checkpoints=3)):
        if second:
            prob = sciode.SecondOrderODEProblem(lambda v, u, p, t: -p**2 * torch.sin(u),
                                                torch.tensor([0.0], dtype=torch.float64),
                                                torch.tensor([1.0], dtype=torch.float64), (0.0, 2.0), w)
        else:
            prob = sciode.ODEProblem(lambda u, p, t: -p * torch.sin(u), torch.tensor([1.0, 2.0], dtype=torch.float64),
                                     (0.0, 2.0), w)
        sol = sciode.solve(prob, solver, dt=0.01, sensealg=sens, saveat=4)
        out.append(grads(sol.u.square().sum(), [w])[0])
    for g in out[1:]:
        assert float((g - out[0]).abs()) <= 1e-10 * max(1.0, float(out[0].abs()))

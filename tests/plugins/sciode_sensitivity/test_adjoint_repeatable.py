"""The adjoint's backward pass is a function of its inputs (issue 11 item 7).

Saving only at t0 gives the identity gradient (there is nothing to integrate); a
second backward pass through the same solve gives bitwise the first one's gradient
(no step size carried over from the previous pass), so torch.autograd.gradcheck,
which backpropagates twice and compares, passes on a small float64 adjoint solve.
"""
from __future__ import annotations

import torch

import sciode

F64 = torch.float64


def rotation_decay(u: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """u' = A(p) u with A = [[-p0, p1], [-p1, -p0]]: a damped rotation."""
    x, y = u[..., 0], u[..., 1]
    return torch.stack([-p[0] * x + p[1] * y, -p[1] * x - p[0] * y], -1)


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    u0 = torch.tensor([1.0, 0.5], dtype=F64, requires_grad=True)
    p = torch.tensor([0.3, 2.0], dtype=F64, requires_grad=True)
    return u0, p


def adjoint_solve(u0: torch.Tensor, p: torch.Tensor, saveat, **options) -> sciode.Solution:
    prob = sciode.ODEProblem(rotation_decay, u0, (0.0, 1.0), p)
    return sciode.solve(prob, "tsit5", saveat=saveat, sensealg="adjoint", rtol=1e-10, atol=1e-12, **options)


def test_saveat_t0_only_gives_the_identity_gradient() -> None:
    u0, p = inputs()
    sol = adjoint_solve(u0, p, [0.0])
    assert sol.u.shape == (1, 2)
    weights = torch.tensor([0.7, -1.3], dtype=F64)
    g_u0, g_p = torch.autograd.grad((sol.u[0] * weights).sum(), [u0, p])
    assert torch.equal(g_u0, weights)
    assert torch.equal(g_p, torch.zeros(2, dtype=F64))


def test_saveat_t0_among_other_times() -> None:
    u0, p = inputs()
    times = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    adjoint = adjoint_solve(u0, p, times)
    backprop = sciode.solve(sciode.ODEProblem(rotation_decay, u0, (0.0, 1.0), p), "tsit5", saveat=times,
                            rtol=1e-10, atol=1e-12)
    loss_a, loss_b = adjoint.u.square().sum(), backprop.u.square().sum()
    for a, b in zip(torch.autograd.grad(loss_a, [u0, p]), torch.autograd.grad(loss_b, [u0, p])):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)


def test_second_backward_pass_is_bitwise_the_first() -> None:
    u0, p = inputs()
    sol = adjoint_solve(u0, p, torch.linspace(0.0, 1.0, 6, dtype=F64))
    loss = (sol.u ** 3).sum()
    first = torch.autograd.grad(loss, [u0, p], retain_graph=True)
    second = torch.autograd.grad(loss, [u0, p], retain_graph=True)
    third = torch.autograd.grad(loss, [u0, p])
    for a, b, c in zip(first, second, third):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_a_fresh_solve_gives_the_same_gradient() -> None:
    u0, p = inputs()
    grads = []
    for _ in range(2):
        sol = adjoint_solve(u0, p, 4)
        grads.append(torch.autograd.grad(sol.u.sum(), [u0, p]))
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_gradcheck_passes_on_a_small_adjoint_solve() -> None:
    u0, p = inputs()
    times = torch.tensor([0.25, 1.0], dtype=F64)

    def fn(u0: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return adjoint_solve(u0, p, times).u

    assert torch.autograd.gradcheck(fn, (u0, p), eps=1e-6, atol=1e-6, rtol=1e-5)

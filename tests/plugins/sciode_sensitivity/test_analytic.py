"""Every algorithm x every solver family against analytic gradients.

dx/dt = -k x (gradient w.r.t. k and x0) and du/dt = A u (gradient w.r.t. A and u0,
from the Frechet derivative of the matrix exponential). Float64 throughout.
"""
from __future__ import annotations

import pytest
import torch
from sens_helpers import ALGORITHMS, SOLVERS, SOLVERS_SLOW_IMPLICIT, grads, max_rel

import sciode

T = 1.5


def _block_frechet(X: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """L_exp(X, E), the Frechet derivative of expm at X in direction E (Mathias' block formula)."""
    n = X.shape[0]
    M = torch.zeros(2 * n, 2 * n, dtype=X.dtype)
    M[:n, :n], M[n:, n:], M[:n, n:] = X, X, E
    return torch.linalg.matrix_exp(M)[:n, n:]


@pytest.mark.parametrize("sensealg", ALGORITHMS)
@pytest.mark.parametrize("solver, kwargs, tol", SOLVERS)
def test_exponential_decay(sensealg: str, solver: str, kwargs: dict, tol: float) -> None:
    k = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    x0 = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    prob = sciode.ODEProblem(lambda x, p, t: -p * x, x0, (0.0, T), k)
    sol = sciode.solve(prob, solver, sensealg=sensealg, saveat=[T], **kwargs)
    loss = sol.u[-1].square().sum()  # |x0|^2 exp(-2kT)
    gx0, gk = grads(loss, [x0, k])
    decay = torch.exp(torch.tensor(-2 * 0.8 * T, dtype=torch.float64))
    assert max_rel(gx0, 2 * x0.detach() * decay) < tol
    assert max_rel(gk, -2 * T * x0.detach().square().sum() * decay) < tol
    assert sol.stats["backward_nfe"] > 0


@pytest.mark.parametrize("sensealg", ALGORITHMS)
@pytest.mark.parametrize("solver, kwargs, tol", SOLVERS_SLOW_IMPLICIT)
def test_linear_system(sensealg: str, solver: str, kwargs: dict, tol: float) -> None:
    A = torch.tensor([[-0.5, 1.2, 0.0], [-1.0, -0.3, 0.4], [0.2, 0.0, -0.8]], dtype=torch.float64, requires_grad=True)
    u0 = torch.tensor([1.0, 0.5, -0.5], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    prob = sciode.ODEProblem(lambda u, p, t: u @ p.T, u0, (0.0, T), A)
    sol = sciode.solve(prob, solver, sensealg=sensealg, saveat=[T], **kwargs)
    gA, gu0 = grads(sol.u[-1] @ w, [A, u0])  # L = w^T expm(A T) u0
    with torch.no_grad():
        Ad, u0d = A.detach(), u0.detach()
        expected_u0 = torch.linalg.matrix_exp(Ad * T).T @ w
        expected_A = T * _block_frechet(T * Ad.T, torch.outer(w, u0d))
    assert max_rel(gu0, expected_u0) < tol
    assert max_rel(gA, expected_A) < tol

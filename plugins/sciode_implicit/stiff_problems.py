"""Classic stiff test problems (batched, with analytic Jacobians), for tests and benchmarks.

Robertson (chemical kinetics), van der Pol (relaxation oscillator), HIRES (plant
physiology, 8 species) from Hairer & Wanner, Solving ODEs II, IV.1 and IV.10, and the
Prothero-Robinson equation y' = -lambda (y - sin t) + cos t with exact solution sin t.
Each function returns an ``sciode.ODEProblem``; ``analytic_jac=False`` leaves the
Jacobian to autodiff.
"""
from __future__ import annotations

import math

import torch

import sciode


def robertson(tspan: tuple[float, float] = (0.0, 1e5), k: torch.Tensor | None = None, *,
              members: int | None = None, dtype: torch.dtype = torch.float64,
              analytic_jac: bool = True) -> sciode.ODEProblem:
    """y1' = -k1 y1 + k3 y2 y3, y2' = k1 y1 - k2 y2^2 - k3 y2 y3, y3' = k2 y2^2.

    ``k``: rate constants (k1, k2, k3), shape (3,) or (*batch, 3) for an ensemble
    (default 0.04, 3e7, 1e4); ``members`` repeats the default for a batch.
    """
    if k is None:
        k = torch.tensor([0.04, 3e7, 1e4], dtype=dtype)
        if members is not None:
            k = k.expand(members, 3).clone()
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=dtype).expand(k.shape[:-1] + (3,)).clone()

    def f(u, p, t):
        y1, y2, y3 = u.unbind(-1)
        k1, k2, k3 = p.unbind(-1)
        a, b, c = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
        return torch.stack([c - a, a - b - c, b], -1)

    def jac(u, p, t):
        y1, y2, y3 = u.unbind(-1)
        k1, k2, k3 = p.unbind(-1)
        z = torch.zeros_like(y1)
        rows = [torch.stack([-k1 + z, k3 * y3, k3 * y2], -1),
                torch.stack([k1 + z, -2 * k2 * y2 - k3 * y3, -k3 * y2], -1),
                torch.stack([z, 2 * k2 * y2, z], -1)]
        return torch.stack(rows, -2)

    return sciode.ODEProblem(f, u0, tspan, k, jac=jac if analytic_jac else None, state_names=["y1", "y2", "y3"],
                             name="robertson")


def robertson_dae(tspan: tuple[float, float] = (0.0, 1e5), *, dtype: torch.dtype = torch.float64) -> sciode.ODEProblem:
    """Robertson in its index-1 DAE form: y1, y2 as in ``robertson``, 0 = y1 + y2 + y3 - 1 (mass diag(1, 1, 0))."""
    k = torch.tensor([0.04, 3e7, 1e4], dtype=dtype)

    def f(u, p, t):
        y1, y2, y3 = u.unbind(-1)
        k1, k2, k3 = p.unbind(-1)
        a, b, c = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
        return torch.stack([c - a, a - b - c, y1 + y2 + y3 - 1], -1)

    return sciode.ODEProblem(f, torch.tensor([1.0, 0.0, 0.0], dtype=dtype), tspan, k,
                             mass_matrix=torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=dtype)),
                             state_names=["y1", "y2", "y3"], name="robertson DAE")


def van_der_pol(mu: float = 1000.0, tspan: tuple[float, float] = (0.0, 3000.0), *, dtype: torch.dtype = torch.float64,
                analytic_jac: bool = True) -> sciode.ODEProblem:
    """y1' = y2, y2' = mu (1 - y1^2) y2 - y1, from (2, 0)."""
    u0 = torch.tensor([2.0, 0.0], dtype=dtype)
    mu_t = torch.tensor(mu, dtype=dtype)

    def f(u, p, t):
        y1, y2 = u.unbind(-1)
        return torch.stack([y2, p * (1 - y1 * y1) * y2 - y1], -1)

    def jac(u, p, t):
        y1, y2 = u.unbind(-1)
        rows = [torch.stack([torch.zeros_like(y1), torch.ones_like(y1)], -1),
                torch.stack([-2 * p * y1 * y2 - 1, p * (1 - y1 * y1)], -1)]
        return torch.stack(rows, -2)

    return sciode.ODEProblem(f, u0, tspan, mu_t, jac=jac if analytic_jac else None, name="van der Pol")


_HIRES_U0 = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057]


def hires(tspan: tuple[float, float] = (0.0, 321.8122), *, dtype: torch.dtype = torch.float64) -> sciode.ODEProblem:
    """The HIRES problem (Schaefer 1975; Hairer & Wanner II, IV.10); Jacobian by autodiff."""

    def f(u, p, t):
        y = u.unbind(-1)
        return torch.stack([
            -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007,
            1.71 * y[0] - 8.75 * y[1],
            -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4],
            8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3],
            -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6],
            -280.0 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6],
            280.0 * y[5] * y[7] - 1.81 * y[6],
            -280.0 * y[5] * y[7] + 1.81 * y[6],
        ], -1)

    return sciode.ODEProblem(f, torch.tensor(_HIRES_U0, dtype=dtype), tspan, name="HIRES")


def prothero_robinson(lam: float = 1e6, tspan: tuple[float, float] = (0.0, 2.0), *,
                      dtype: torch.dtype = torch.float64) -> sciode.ODEProblem:
    """y' = -lam (y - sin t) + cos t, y(0) = 0; the exact solution is sin t for every lam."""

    def f(u, p, t):
        return -p * (u - torch.sin(t)) + torch.cos(t)

    def jac(u, p, t):
        return (-p * torch.ones_like(u)).unsqueeze(-1)

    return sciode.ODEProblem(f, torch.zeros(1, dtype=dtype), tspan, torch.tensor(lam, dtype=dtype), jac=jac,
                             name="Prothero-Robinson")


def exact_prothero_robinson(t: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor([math.sin(t)], dtype=dtype)


def brusselator_1d(n: int = 500, alpha: float | torch.Tensor = 0.02, tspan: tuple[float, float] = (0.0, 10.0), *,
                   dtype: torch.dtype = torch.float64, structure: bool = True) -> sciode.ODEProblem:
    """The 1-D Brusselator (Hairer & Wanner II, IV.1), 2n states interleaved (u_1, v_1, u_2, v_2, ...):
    u_i' = 1 + u_i^2 v_i - 4 u_i + alpha (n+1)^2 (u_{i-1} - 2 u_i + u_{i+1}), v_i' = 3 u_i - u_i^2 v_i + alpha
    (n+1)^2 (v_{i-1} - 2 v_i + v_{i+1}), boundary values u = 1, v = 3; u(x, 0) = 1 + sin(2 pi x), v = 3.

    ``alpha``: a number, or a (members,) tensor for a batch with different diffusion constants.
    ``structure``: give ``jac_prototype=sciode.Banded(2, 2)`` (the interleaved ordering is pentadiagonal).
    """
    x = torch.arange(1, n + 1, dtype=dtype) / (n + 1)
    alpha = torch.as_tensor(alpha, dtype=dtype)
    u0 = torch.stack([1 + torch.sin(2 * math.pi * x), torch.full_like(x, 3.0)], -1).reshape(2 * n)
    if alpha.ndim == 1:
        u0 = u0.expand(alpha.shape[0], 2 * n).clone()
    p = alpha.reshape(alpha.shape + (1, 1)) * (n + 1) ** 2 if alpha.ndim == 1 else alpha * (n + 1) ** 2
    boundary = torch.tensor([1.0, 3.0], dtype=dtype)

    def f(y, c, t):  # the diffusion term first, then the reactions added in place: 11 ops, not 16
        y = y.reshape(y.shape[:-1] + (n, 2))
        edge = boundary.expand(y.shape[:-2] + (1, 2))
        padded = torch.cat([edge, y, edge], -2)
        out = (padded[..., :-2, :] + padded[..., 2:, :]).sub_(y, alpha=2).mul_(c)
        uu, vv = y[..., 0], y[..., 1]
        r = uu * uu * vv
        out[..., 0].add_(r).sub_(uu, alpha=4).add_(1)
        out[..., 1].sub_(r).add_(uu, alpha=3)
        return out.reshape(y.shape[:-2] + (2 * n,))

    return sciode.ODEProblem(f, u0, tspan, p, jac_prototype=sciode.Banded(2, 2) if structure else None,
                             name=f"Brusselator 1-D, N={n}")


def _periodic_stencil(n: int) -> torch.Tensor:
    """The pattern of a periodic 5-point Laplacian on an n x n grid, 2 species per point (sparse bool)."""
    idx = torch.arange(n * n).reshape(n, n)
    neighbours = [idx, idx.roll(1, 0), idx.roll(-1, 0), idx.roll(1, 1), idx.roll(-1, 1)]
    rows, cols = [], []
    for s_row in range(2):
        for s_col in range(2):
            targets = neighbours if s_row == s_col else [idx]  # diffusion within a species, reaction at the point
            for nb in targets:
                rows.append(2 * idx.reshape(-1) + s_row)
                cols.append(2 * nb.reshape(-1) + s_col)
    rows, cols = torch.cat(rows), torch.cat(cols)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones_like(rows, dtype=torch.bool),
                                   (2 * n * n, 2 * n * n), check_invariants=False).coalesce()


def brusselator_2d(n: int = 64, tspan: tuple[float, float] = (0.0, 11.5), *, dtype: torch.dtype = torch.float64,
                   structure: bool = True) -> sciode.ODEProblem:
    """The 2-D Brusselator on a periodic n x n grid (the SciML / SUNDIALS benchmark form), 2 n^2 states
    (u, v interleaved per grid point): u' = alpha lap u + B + u^2 v - (A + 1) u + forcing, v' = alpha lap v
    + A u - u^2 v, A = 3.4, B = 1, alpha = 10 / dx^2 with dx = 1 / (n - 1); the forcing 5 switches on at
    t = 1.1 in the disk of radius 0.1 around (0.3, 0.6). u0 = 22 (y (1 - y))^1.5, v0 = 27 (x (1 - x))^1.5.
    ``structure``: give the sparse 5-point pattern as ``jac_prototype``."""
    x = torch.linspace(0, 1, n, dtype=dtype)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    u0 = torch.stack([22 * (Y * (1 - Y)) ** 1.5, 27 * (X * (1 - X)) ** 1.5], -1).reshape(2 * n * n)
    disk = (((X - 0.3) ** 2 + (Y - 0.6) ** 2) <= 0.01).to(dtype)
    alpha = torch.tensor(10.0 * (n - 1) ** 2, dtype=dtype)

    def f(y, a, t):
        y = y.reshape(y.shape[:-1] + (n, n, 2))
        lap = y.roll(1, -3) + y.roll(-1, -3) + y.roll(1, -2) + y.roll(-1, -2) - 4 * y
        uu, vv = y[..., 0], y[..., 1]
        r = uu * uu * vv
        force = 5.0 * disk * (t >= 1.1).to(y.dtype)
        react = torch.stack([1.0 + r - 4.4 * uu + force, 3.4 * uu - r], -1)
        return (react + a * lap).reshape(y.shape[:-3] + (2 * n * n,))

    return sciode.ODEProblem(f, u0, tspan, alpha, jac_prototype=_periodic_stencil(n) if structure else None,
                             name=f"Brusselator 2-D, {n}x{n}")


# POLLU (Verwer 1994; the Test Set for IVP Solvers): 25 reactions of 20 species, as data.
# Each reaction: (rate constant, reactants (0-based species), {species: net change}).
_POLLU = (
    (0.35, (0,), {0: -1, 1: 1, 2: 1}), (26.6, (1, 3), {1: -1, 3: -1, 0: 1}),
    (1.23e4, (4, 1), {4: -1, 1: -1, 0: 1, 5: 1}),
    (8.6e-4, (6,), {6: -1, 4: 2, 7: 1}), (8.2e-4, (6,), {6: -1, 7: 1}), (1.5e4, (6, 5), {6: -1, 5: -1, 4: 1, 7: 1}),
    (1.3e-4, (8,), {8: -1, 4: 1, 7: 1, 9: 1}), (2.4e4, (8, 5), {8: -1, 5: -1, 10: 1}),
    (1.65e4, (10, 1), {10: -1, 1: -1, 0: 1, 9: 1, 11: 1}), (9.0e3, (10, 0), {10: -1, 0: -1, 12: 1}),
    (0.022, (12,), {12: -1, 0: 1, 10: 1}), (1.2e4, (9, 1), {9: -1, 1: -1, 0: 1, 13: 1}),
    (1.88, (13,), {13: -1, 4: 1, 6: 1}), (1.63e4, (0, 5), {0: -1, 5: -1, 14: 1}), (4.8e6, (2,), {2: -1, 3: 1}),
    (3.5e-4, (3,), {3: -1, 15: 1}), (0.0175, (3,), {3: -1, 2: 1}), (1.0e8, (15,), {15: -1, 5: 2}),
    (4.44e11, (15,), {15: -1, 2: 1}), (1240.0, (16, 5), {16: -1, 5: -1, 4: 1, 17: 1}), (2.1, (18,), {18: -1, 1: 1}),
    (5.78, (18,), {18: -1, 0: 1, 2: 1}), (0.0474, (0, 3), {0: -1, 3: -1, 18: 1}),
    (1780.0, (18, 0), {18: -1, 0: -1, 19: 1}),
    (3.12, (19,), {19: -1, 0: 1, 18: 1}),
)
_POLLU_U0 = {1: 0.2, 3: 0.04, 6: 0.1, 7: 0.3, 8: 0.01, 16: 0.007}


def pollu(tspan: tuple[float, float] = (0.0, 60.0), *, dtype: torch.dtype = torch.float64) -> sciode.ODEProblem:
    """POLLU, the 20-species air-pollution chemistry of the Hairer-Wanner / Bari test set (Verwer 1994)."""
    k = torch.tensor([r[0] for r in _POLLU], dtype=dtype)
    stoich = torch.zeros(len(_POLLU), 20, dtype=dtype)
    for j, (_, _, change) in enumerate(_POLLU):
        for species, amount in change.items():
            stoich[j, species] = amount
    first = [r[1][0] for r in _POLLU]
    second = [r[1][1] if len(r[1]) > 1 else None for r in _POLLU]
    pairs = torch.tensor([s for s in second if s is not None])
    has_second = torch.tensor([s is not None for s in second])

    def f(u, p, t):
        rates = p * u[..., first]
        rates = rates.clone()
        rates[..., has_second] = rates[..., has_second] * u[..., pairs]
        return rates @ stoich

    u0 = torch.zeros(20, dtype=dtype)
    for i, v in _POLLU_U0.items():
        u0[i] = v
    return sciode.ODEProblem(f, u0, tspan, k, name="POLLU")

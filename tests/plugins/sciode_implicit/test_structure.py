"""Jacobian structure: colored Jacobians, every linsolve choice, gradients, problem validation."""
import numpy as np
import pytest
import torch

import sciode
from sciode import RHS
from sciode_implicit import stiff_problems
from sciode_implicit.linsolve import LinearSystem, LinsolveOptions
from sciode_implicit.pattern import _greedy, make_pattern

LINSOLVES = ["dense", "banded", "sparse", "gmres"]


def _coupled(n, mask, batch=()):
    """f_i = -i u_i + sum_j A_ij sin(u_j) u_j^2 on the pattern ``mask``: nonlinear, every entry present."""
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(n, n, generator=gen, dtype=torch.float64) * mask
    u0 = torch.rand(batch + (n,), generator=gen, dtype=torch.float64)

    def f(u, p, t):
        return -torch.arange(1, n + 1, dtype=u.dtype) * u + (torch.sin(u) * u * u) @ p.T

    return f, u0, A


def _masks(n):
    i = torch.arange(n)
    d = i[:, None] - i[None, :]
    gen = torch.Generator().manual_seed(3)
    block = (i[:, None] // 4) == (i[None, :] // 4)
    rand = (torch.rand(n, n, generator=gen) < 0.08) | (d == 0)
    return {"tridiagonal": d.abs() <= 1, "banded": (d >= -1) & (d <= 3), "block": block, "random": rand}


@pytest.mark.parametrize("kind", ["tridiagonal", "banded", "block", "random"])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_colored_jacobian_equals_dense_autodiff(kind, batch):
    n = 30
    mask = _masks(n)[kind]
    f, u0, A = _coupled(n, mask.double(), batch)
    prob = sciode.ODEProblem(f, u0, (0.0, 1.0), A, jac_prototype=mask)
    rhs = RHS(prob, 1e-6, 1e-9, None)
    system = LinearSystem(prob, LinsolveOptions.build("dense", None, 1e-3, 30, 300))
    J, _ = system.jacobian(rhs, torch.tensor(0.0, dtype=torch.float64), u0)
    dense = torch.func.vmap(torch.func.jacrev(lambda u: f(u, A, 0.0)))(u0.reshape(-1, n)).reshape(batch + (n, n))
    assert float((J - dense).abs().max()) <= 1e-12
    colors = system.pattern.row_coloring[0]
    assert system.nproducts == colors
    if kind == "tridiagonal":
        assert colors == 3


@pytest.mark.parametrize("lower, upper, n", [(1, 1, 10), (2, 2, 40), (0, 3, 9), (4, 0, 5), (2, 5, 8)])
def test_full_band_coloring_is_the_greedy_one(lower, upper, n):
    """A full band is colored i mod (lower + upper + 1) without the greedy loop: the same colors."""
    pattern = make_pattern(n, sciode.Banded(lower, upper))
    assert pattern.full_band
    conflicts = pattern.scipy_matrix(np.ones(pattern.nnz, dtype=np.int8))
    for coloring, graph in ((pattern.row_coloring, conflicts @ conflicts.T), (pattern.column_coloring,
                                                                             conflicts.T @ conflicts)):
        assert coloring[0] == _greedy(graph.tocsr(), n)[0] == lower + upper + 1
        assert torch.equal(coloring[1], _greedy(graph.tocsr(), n)[1])
    corner = torch.eye(n, dtype=torch.bool)
    corner[0, n - 1] = True  # a band n wide with one entry off the diagonal: greedy's case
    assert not make_pattern(n, corner).full_band


@pytest.mark.parametrize("kind", ["tridiagonal", "random"])
def test_user_jvp_colored_jacobian_counts_one_product_per_color(kind):
    n = 25
    mask = _masks(n)[kind]
    f, u0, A = _coupled(n, mask.double())
    calls = []

    def jvp(u, p, t, v):
        calls.append(1)
        return torch.func.jvp(lambda x: f(x, p, t), (u,), (v,))[1]

    prob = sciode.ODEProblem(f, u0, (0.0, 1.0), A, jac_prototype=mask.to_sparse(), jvp=jvp)
    rhs = RHS(prob, 1e-6, 1e-9, None)
    system = LinearSystem(prob, LinsolveOptions.build("sparse", None, 1e-3, 30, 300))
    J, _ = system.jacobian(rhs, torch.tensor(0.0, dtype=torch.float64), u0)
    dense = torch.func.jacrev(lambda u: f(u, A, 0.0))(u0)
    assert float((J.pattern.to_dense(J.values) - dense).abs().max()) <= 1e-12
    assert len(calls) == system.pattern.column_coloring[0]


def test_banded_prototype_and_pattern_description():
    pat = make_pattern(10, sciode.Banded(1, 2))
    assert pat.bandwidth == (1, 2)
    assert pat.column_coloring[0] == 4
    with pytest.raises(sciode.ProblemError, match="Banded"):
        sciode.Banded(-1, 0)


def _stiff_linear(batch=(2,)):
    n = 12
    i = torch.arange(n)
    A = -torch.diag(torch.logspace(0, 4, n, dtype=torch.float64)) + 0.5 * ((i[:, None] - i[None, :]).abs() == 1)
    u0 = torch.ones(batch + (n,), dtype=torch.float64)
    p = torch.tensor(1.3, dtype=torch.float64)
    return lambda u, c, t: c * (u @ A.T) + torch.sin(t), u0, p, sciode.Banded(1, 1)


@pytest.mark.parametrize("solver", ["rodas5p", "rodas4", "implicit_euler"])
def test_every_linsolve_gives_the_same_solution(solver):
    f, u0, p, band = _stiff_linear()
    prob = sciode.ODEProblem(f, u0, (0.0, 1.0), p, jac_prototype=band)
    ends = {ls: sciode.solve(prob, solver, linsolve=ls, rtol=1e-7, atol=1e-9, saveat=[0.0, 1.0]) for ls in LINSOLVES}
    for ls, sol in ends.items():
        assert sol.retcode is sciode.ReturnCode.SUCCESS, (ls, sol.message)
        assert torch.allclose(sol.u[-1], ends["dense"].u[-1], rtol=1e-5, atol=1e-8), ls
    assert ends["gmres"].stats["nkrylov"] > 0 and ends["dense"].stats["nkrylov"] == 0


@pytest.mark.slow
def test_every_linsolve_on_the_brusselator():
    prob = stiff_problems.brusselator_1d(50)
    ref = sciode.solve(prob, "rodas5p", linsolve="dense", rtol=1e-8, atol=1e-8, saveat=[0.0, 10.0]).u[-1]
    for ls in LINSOLVES:
        sol = sciode.solve(prob, "rodas5p", linsolve=ls, rtol=1e-6, atol=1e-6, saveat=[0.0, 10.0])
        assert sol.retcode is sciode.ReturnCode.SUCCESS, ls
        assert float(((sol.u[-1] - ref).abs() / ref.abs()).max()) < 1e-4, ls


def _fd_check(loss, x, h=1e-6):
    x = x.detach().clone().requires_grad_()
    g, = torch.autograd.grad(loss(x), x)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    with torch.no_grad():
        fd = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
    return float((g * v).sum()), float(fd)


@pytest.mark.parametrize("solver", ["rodas5p", "implicit_euler"])
def test_gmres_gradients_small(solver):
    """The fast gmres gradient check (the full one is slow): a 4-state system, a few steps."""
    A = torch.tensor([[-50.0, 1.0, 0, 0], [1.0, -5.0, 1.0, 0], [0, 1.0, -1.0, 0.5], [0, 0, 0.5, -2.0]],
                     dtype=torch.float64)
    f = lambda u, c, t: c * (u @ A.T) + torch.sin(t)  # noqa: E731
    u0 = torch.ones(2, 4, dtype=torch.float64)

    def loss(c):
        prob = sciode.ODEProblem(f, u0, (0.0, 0.2), c, jvp=_exact_jvp(f))
        sol = sciode.solve(prob, solver, linsolve="gmres", dt=0.05, adaptive=False, krylov_tol=1e-10)
        return (sol.u[-1] ** 2).sum()

    ad, fd = _fd_check(loss, torch.tensor(1.1, dtype=torch.float64))
    assert abs(ad - fd) <= 1e-6 * abs(fd), (ad, fd)


@pytest.mark.parametrize("stepping", ["shared", "per_member"])
def test_gmres_solves_are_reproducible(stepping):
    """Two identical gmres solves are bitwise equal (with LAPACK's default least-squares driver
    they differed in the last bits from run to run, and then in their step counts)."""
    prob = stiff_problems.robertson((0.0, 1e3), members=4)
    runs = [sciode.solve(prob, "rodas4", rtol=1e-6, atol=1e-10, linsolve="gmres", stepping=stepping)
            for _ in range(3)]
    for sol in runs[1:]:
        assert sol.stats["nsteps"] == runs[0].stats["nsteps"]
        assert torch.equal(sol.u, runs[0].u)


def _exact_jvp(f):
    """gmres's default products are difference quotients, whose round-off noise would swamp a
    finite-difference check of the gradient: the gradient tests give the exact jvp."""
    return lambda u, p, t, v: torch.func.jvp(lambda x: f(x, p, t), (u,), (v,))[1]


@pytest.mark.parametrize("solver", ["rodas5p", "implicit_euler"])
@pytest.mark.parametrize("linsolve", ["dense", "banded", "sparse", pytest.param("gmres", marks=pytest.mark.slow)])
def test_gradients_with_every_linsolve(solver, linsolve):
    f, u0, p, band = _stiff_linear(batch=(2,))
    jvp = _exact_jvp(f) if linsolve == "gmres" else None

    def loss_p(c):
        prob = sciode.ODEProblem(f, u0, (0.0, 0.5), c, jac_prototype=band, jvp=jvp)
        sol = sciode.solve(prob, solver, linsolve=linsolve, dt=0.05, adaptive=False, krylov_tol=1e-10)
        return (sol.u[-1] ** 2).sum()

    def loss_u0(x):
        prob = sciode.ODEProblem(f, x, (0.0, 0.5), p, jac_prototype=band, jvp=jvp)
        sol = sciode.solve(prob, solver, linsolve=linsolve, dt=0.05, adaptive=False, krylov_tol=1e-10)
        return (sol.u[-1] ** 2).sum()

    for loss, x in ((loss_p, p), (loss_u0, u0)):
        ad, fd = _fd_check(loss, x)
        assert abs(ad - fd) <= 1e-6 * abs(fd), (ad, fd)


@pytest.mark.slow
def test_gradients_on_the_brusselator_every_linsolve():
    alpha = torch.tensor(0.02, dtype=torch.float64)

    base = stiff_problems.brusselator_1d(50, tspan=(0.0, 0.5))

    def loss(a, linsolve):
        jvp = _exact_jvp(base.f) if linsolve == "gmres" else None
        prob = sciode.remake(base, p=a * 51**2, jvp=jvp)
        sol = sciode.solve(prob, "rodas5p", linsolve=linsolve, dt=0.05, adaptive=False, krylov_tol=1e-10)
        return sol.u[-1].sum()

    grads = {}
    for ls in LINSOLVES:
        ad, fd = _fd_check(lambda a: loss(a, ls), alpha)
        assert abs(ad - fd) <= 1e-6 * abs(fd), (ls, ad, fd)
        grads[ls] = ad
    assert max(grads.values()) - min(grads.values()) <= 1e-7 * abs(grads["dense"])


def test_user_sparse_jacobian():
    f, u0, p, band = _stiff_linear(batch=())
    n = u0.shape[-1]
    i = torch.arange(n)
    A = -torch.diag(torch.logspace(0, 4, n, dtype=torch.float64)) + 0.5 * ((i[:, None] - i[None, :]).abs() == 1)

    def jac(u, c, t):
        return (c * A).to_sparse()

    ref = sciode.solve(sciode.ODEProblem(f, u0, (0.0, 1.0), p), "rodas5p", saveat=[0.0, 1.0]).u[-1]
    for ls in ("dense", "sparse"):
        sol = sciode.solve(sciode.ODEProblem(f, u0, (0.0, 1.0), p, jac=jac), "rodas5p", linsolve=ls, saveat=[0.0, 1.0])
        assert torch.allclose(sol.u[-1], ref, rtol=1e-6, atol=1e-9), ls


def test_zero_constant_and_time_only_fields_get_a_zero_jacobian():
    """Issue 11 item 7: f not depending on u used to fail with 'could not differentiate f'."""
    u0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    fields = {"zero": (lambda u, p, t: torch.zeros_like(u), u0),
              "constant": (lambda u, p, t: torch.ones_like(u), u0 + 1),
              "time-only": (lambda u, p, t: torch.cos(t) * torch.ones_like(u), u0 + torch.sin(torch.tensor(1.0)))}
    for name, (f, exact) in fields.items():
        for solver in ("implicit_euler", "trapezoid", "rodas4", "rodas5p"):
            for proto in (None, sciode.Banded(0, 0)):
                sol = sciode.solve(sciode.ODEProblem(f, u0, (0.0, 1.0), jac_prototype=proto), solver, rtol=1e-8)
                assert sol.retcode is sciode.ReturnCode.SUCCESS, (name, solver)
                tol = 1e-3 if solver == "implicit_euler" else 1e-5  # order 1: its error estimate is loose
                assert torch.allclose(sol.u[-1], exact.double(), atol=tol), (name, solver, sol.u[-1])


def test_bad_structure_arguments_raise_early():
    f = lambda u, p, t: -u  # noqa: E731
    u0 = torch.ones(4, dtype=torch.float64)
    with pytest.raises(sciode.ProblemError, match="jac_prototype must have shape"):
        sciode.ODEProblem(f, u0, (0, 1), jac_prototype=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(sciode.ProblemError, match="boolean mask"):
        sciode.ODEProblem(f, u0, (0, 1), jac_prototype=torch.ones(4, 4))
    with pytest.raises(sciode.ProblemError, match="jac_prototype must be None"):
        sciode.ODEProblem(f, u0, (0, 1), jac_prototype="banded")
    with pytest.raises(sciode.ProblemError, match="mass_matrix must have shape"):
        sciode.ODEProblem(f, u0, (0, 1), mass_matrix=torch.eye(3, dtype=torch.float64))
    with pytest.raises(sciode.ProblemError, match="jvp must be callable"):
        sciode.ODEProblem(f, u0, (0, 1), jvp=3)
    prob = sciode.ODEProblem(f, u0, (0, 1))
    with pytest.raises(sciode.ProblemError, match="linsolve must be"):
        sciode.solve(prob, "rodas4", linsolve="cholesky")
    with pytest.raises(sciode.ProblemError, match="needs the Jacobian's structure"):
        sciode.solve(prob, "rodas4", linsolve="banded")
    proto = sciode.remake(prob, jac_prototype=sciode.Banded(1, 1), mass_matrix=torch.eye(4, dtype=torch.float64))
    assert proto.jac_prototype == sciode.Banded(1, 1) and proto.mass_matrix is not None

"""Backprop (sensealg=None: autograd through the loop) through the implicit solvers vs finite differences.

float64, central differences along a random direction per input. Newton-based solvers
differentiate the converged stage implicitly (one Newton step with autograd from the
detached solution), so the gradient is that of the discrete solution up to the Newton
tolerance: tight rtol/atol at a fixed step keep that far below the finite-difference error.
"""
import pytest
import torch

import sciode


def _problem(u0, k):
    def f(u, p, t):
        a, b = p["a"], p["b"]
        x, y = u[..., :1], u[..., 1:]  # keep a trailing dim so a per-member t (*batch, 1) broadcasts
        return torch.cat([-a * x + b * y * y * torch.cos(t), a * x - 30.0 * y - b * y * y], -1)

    return sciode.ODEProblem(f, u0, (0.0, 1.0), {"a": k[0], "b": k[1]})


def _loss(u0, k, solver, **kw):
    sol = sciode.solve(_problem(u0, k), solver, saveat=torch.tensor([0.5, 1.0], dtype=torch.float64), **kw)
    assert sol.retcode is sciode.ReturnCode.SUCCESS, sol.message
    return (sol.u[-1] ** 2).sum() + sol.u[0, 0, 1]


TIGHT = dict(rtol=1e-12, atol=1e-12, max_iters=25)  # simplified Newton converges linearly: allow iterations
CASES = [
    ("implicit_euler", dict(dt=0.05, adaptive=False, **TIGHT)),
    ("trapezoid", dict(dt=0.05, adaptive=False, **TIGHT)),
    ("rodas4", dict(dt=0.05, adaptive=False)),
    ("rodas4", dict(rtol=1e-8, atol=1e-10)),
    ("rodas4p", dict(rtol=1e-8, atol=1e-10, stepping="per_member")),
    ("trapezoid", dict(dt=0.05, adaptive=False, stepping="per_member", **TIGHT)),
]


@pytest.mark.parametrize("solver,kw", CASES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)])
def test_backprop_matches_finite_differences(solver, kw):
    u0 = torch.tensor([[1.0, 0.2], [0.7, 0.4]], dtype=torch.float64, requires_grad=True)
    k = torch.tensor([2.0, 5.0], dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(_loss(u0, k, solver, **kw), (u0, k))
    gen = torch.Generator().manual_seed(1)
    eps = 1e-6
    with torch.no_grad():
        for which, (x, g) in enumerate(zip((u0, k), grads)):
            v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            shifted = [(u0 + s * eps * v, k) if which == 0 else (u0, k + s * eps * v) for s in (1, -1)]
            fd = (_loss(*shifted[0], solver, **kw) - _loss(*shifted[1], solver, **kw)) / (2 * eps)
            ad = (g * v).sum()
            rel = float((ad - fd).abs() / fd.abs())
            print(f"{solver} {kw}: input {which}: backprop {float(ad):.10g}, central FD {float(fd):.10g}, "
                  f"rel {rel:.1e}")
            assert rel < 1e-6


def test_newton_iterations_are_not_differentiated():
    """The graph holds one linear solve per time step, however many iterations Newton took."""
    u0 = torch.tensor([1.0, 0.2], dtype=torch.float64, requires_grad=True)
    k = torch.tensor([2.0, 5.0], dtype=torch.float64)
    sol = sciode.solve(_problem(u0, k), "implicit_euler", dt=0.1, adaptive=False, **TIGHT)
    solves, seen, stack = 0, set(), [sol.u[-1].sum().grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        solves += fn.name().startswith("LinalgLuSolve")
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    assert sol.stats["nlinsolve"] > 3 * sol.stats["nsteps"]  # Newton iterated several times per step...
    assert solves == sol.stats["nsteps"]  # ...but autograd recorded one solve per step


def test_scipy_bridge_refuses_gradients_but_rodas_gives_them():
    u0 = torch.tensor([1.0, 0.2], dtype=torch.float64, requires_grad=True)
    k = torch.tensor([2.0, 5.0], dtype=torch.float64)
    with pytest.raises(sciode.NotDifferentiableError, match="rodas4"):
        sciode.solve(_problem(u0, k), "scipy_radau")
    sol = sciode.solve(_problem(u0, k), "rodas4")
    assert sol.u[-1].sum().grad_fn is not None

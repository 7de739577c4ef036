"""Shared problems, solver settings and gradient utilities for the sensitivity tests."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import sciode

ALGORITHMS = ("backprop", "adjoint", "checkpointed")

# solver name -> (solve() keyword arguments, relative accuracy of the gradient of the
# continuous problem that the discretisation allows on the test problems)
EXPLICIT = {
    "rk4": (dict(dt=1e-2), 1e-6),
    "tsit5": (dict(rtol=1e-10, atol=1e-12), 1e-6),
    "dopri5": (dict(rtol=1e-10, atol=1e-12), 1e-6),
}


# how closely checkpointed must reproduce backprop: to rounding, except for the theta
# methods of sciode_implicit, whose step takes one extra Newton correction when autograd is
# on, so their forward solution itself moves by ~1e-8 between grad and no-grad runs (the
# checkpointed forward runs without grad); measured gradient differences ~2e-8
EXACT_TOL = {"implicit_euler": 1e-6, "trapezoid": 1e-6}


def implicit_solvers(slow: bool) -> list:
    """implicit_euler, trapezoid and the implicit plugin's adaptive stiff method, skipped until registered.

    Their steps cost far more than explicit ones (a Jacobian per step by forward-mode
    autodiff), so the tests that sweep them get ``slow=True`` (marked slow).
    """
    names = sciode.solvers()
    reason = "the sciode_implicit plugin (issue 3) does not register {!r} yet"
    extra = [pytest.mark.slow] if slow else []
    params = []
    for name, kwargs, tol in (("implicit_euler", dict(dt=1e-2, adaptive=False), 3e-2),
                              ("trapezoid", dict(dt=2e-2, adaptive=False), 1e-3)):
        missing = pytest.mark.skipif(name not in names, reason=reason.format(name))
        params.append(pytest.param(name, kwargs, tol, marks=[missing, *extra], id=name))
    stiff = sorted(n for n, cls in names.items() if cls.__module__.split(".")[0] == "sciode_implicit"
                   and cls.adaptive and n not in ("implicit_euler", "trapezoid"))
    if stiff:
        params.append(pytest.param(stiff[0], dict(rtol=1e-7, atol=1e-10), 1e-5, marks=extra, id=stiff[0]))
    else:
        none = pytest.mark.skip(reason="no adaptive stiff solver registered by sciode_implicit yet")
        params.append(pytest.param("stiff", {}, 0.0, marks=none, id="stiff-adaptive"))
    return params


EXPLICIT_PARAMS = [pytest.param(name, kw, tol, id=name) for name, (kw, tol) in EXPLICIT.items()]
SOLVERS = EXPLICIT_PARAMS + implicit_solvers(slow=False)
SOLVERS_SLOW_IMPLICIT = EXPLICIT_PARAMS + implicit_solvers(slow=True)


def grads(loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of ``loss``; a missing gradient is an error (the algorithms promise zeros, not None)."""
    out = torch.autograd.grad(loss, inputs, allow_unused=True)
    for i, g in enumerate(out):
        assert g is not None, f"input {i} got None instead of a gradient"
    return list(out)


def central_difference(fn: Callable[[], torch.Tensor], x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """d fn / d x by central differences, perturbing ``x`` in place (under no_grad)."""
    out = torch.zeros_like(x)
    flat, gflat = x.data.view(-1), out.view(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + eps
            plus = float(fn())
            flat[i] = old - eps
            minus = float(fn())
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * eps)
    return out


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)

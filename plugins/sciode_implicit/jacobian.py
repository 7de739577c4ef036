"""Batched Jacobians df/du (and df/dt) for implicit and Rosenbrock solvers.

The Jacobian of every member is computed at once. With a user ``jac(u, p, t)`` on the
Problem it is called directly. Otherwise one forward pass of f over the whole batch is
followed by n vector-Jacobian products, batched with ``is_grads_batched`` (a vmap over
the backward pass), one per state component: cotangent e_i gives row i of every member's
Jacobian at once. Members are assumed independent (the Jacobian of a batch is block
diagonal, one (n, n) block per member): that is what makes n products enough for any
batch size. If the backward pass cannot be vmapped, the n products run one by one.

A field that does not depend on u (zero, constant or time-only) gets a zero Jacobian.

Reverse mode is used rather than forward mode because torch's forward AD routes some
common ops (a Python scalar times a tensor) through slow Python decompositions. df/dt
comes from the same backward pass, with t given member dims ((*batch, 1), as under
per-member stepping) so each member gets its own; if f rejects such a t, and for a user
Jacobian, from one forward-mode directional derivative in t, which is skipped for good
once f turns out not to depend on t.

With ``create_graph`` (backprop through a Rosenbrock step) the products run through
torch.func instead, keeping dJ/du and dJ/dp in the graph.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.autograd import forward_ad
from torch.func import vjp, vmap

from sciode import RHS, ProblemError

_MODE_ATTR = "_sciode_implicit_jacobian_mode"
_AUTONOMOUS_ATTR = "_sciode_implicit_autonomous"
_CLOCK_ATTR = "_sciode_implicit_member_clock_ok"


def _user_jacobian(rhs: RHS, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    J = rhs.problem.jac(u, rhs.p, t)
    n = u.shape[-1]
    expected = u.shape + (n,)
    if not isinstance(J, torch.Tensor) or J.shape != expected:
        got = tuple(J.shape) if isinstance(J, torch.Tensor) else type(J).__name__
        raise ProblemError(f"jac(u, p, t) must return df/du with shape {tuple(expected)} (*batch, n, n); got {got}")
    if J.dtype != u.dtype:
        raise ProblemError(f"jac returned dtype {J.dtype}; expected u0's dtype {u.dtype}")
    return J


def time_derivative(rhs: RHS, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor | None:
    """df/dt at (t, u) by one forward-mode directional derivative; None when f does not use t."""
    if getattr(rhs, _AUTONOMOUS_ATTR, False):
        return None
    with forward_ad.dual_level():
        tangent = forward_ad.unpack_dual(rhs.f(u, rhs.p, forward_ad.make_dual(t, torch.ones_like(t)))).tangent
    if tangent is None:  # f does not depend on t at all: skip df/dt from now on
        setattr(rhs, _AUTONOMOUS_ATTR, True)
    return tangent


def _vjps(y: torch.Tensor, inputs: tuple[torch.Tensor, ...], basis: torch.Tensor, rhs: RHS,
          create_graph: bool) -> tuple[torch.Tensor | None, ...]:
    if getattr(rhs, _MODE_ATTR, "batched") == "batched":
        try:
            return torch.autograd.grad(y, inputs, basis, is_grads_batched=True, create_graph=create_graph,
                                       retain_graph=True, allow_unused=True)
        except Exception:  # the backward pass of f cannot be vmapped: one product at a time
            setattr(rhs, _MODE_ATTR, "loop")
    rows = [torch.autograd.grad(y, inputs, v, create_graph=create_graph, retain_graph=True, allow_unused=True)
            for v in basis.unbind(0)]
    out = []
    for k in range(len(inputs)):
        parts = [row[k] for row in rows]
        out.append(None if parts[0] is None else torch.stack(parts))
    return tuple(out)


def _functional_vjps(rhs: RHS, x: torch.Tensor, tt: torch.Tensor, time_in_pass: bool,
                     basis: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The same products with torch.func (differentiable, for backprop through the Jacobian).

    torch.func runs the inner backward on its own graph level, so its cost does not grow
    with the autograd history that u carries from earlier steps (torch.autograd.grad with
    create_graph would walk that whole history on every call).
    """
    if time_in_pass:
        _, pullback = vjp(lambda a, b: rhs.f(a, rhs.p, b), x, tt)
    else:
        _, pullback = vjp(lambda a: rhs.f(a, rhs.p, tt), x)
    return tuple(vmap(pullback)(basis))


def _independent_of_u(rhs: RHS, t: torch.Tensor, u: torch.Tensor, y: torch.Tensor) -> bool:
    """f's output carries no graph: is that because f ignores u, or because f detaches? One probe call."""
    with torch.no_grad():
        probe = rhs.f(u.detach() * 1.25 + 0.5, rhs.p, t.detach())
    return bool(torch.equal(probe, y.detach()))


def _autodiff(rhs: RHS, t: torch.Tensor, u: torch.Tensor, with_time: bool,
              create_graph: bool) -> tuple[torch.Tensor, Any]:
    n = u.shape[-1]
    # df/dt per member from the same backward pass: t must carry the member dims. A shared
    # 0-d clock over a batch is expanded to (*batch, 1) if f accepts that (as it must under
    # per-member stepping); otherwise df/dt falls back to forward mode.
    expand = with_time and t.ndim == 0 and u.ndim > 1 and getattr(rhs, _CLOCK_ATTR, True)
    time_in_pass = with_time and (t.ndim > 0 or u.ndim == 1 or expand)
    with torch.enable_grad():
        x = u if (create_graph and u.requires_grad) else u.detach().requires_grad_()
        tt = t
        if time_in_pass:
            tt = t.detach().expand(u.shape[:-1] + (1,)).clone() if expand else t.detach()
            tt.requires_grad_()
        try:
            try:
                y = rhs.f(x, rhs.p, tt)
                if expand and y.shape != u.shape:
                    raise ValueError("f changed shape with a per-member t")
            except Exception:
                if not expand:
                    raise
                setattr(rhs, _CLOCK_ATTR, False)  # f needs its shared 0-d clock: df/dt by forward mode
                expand, time_in_pass, tt = False, False, t
                y = rhs.f(x, rhs.p, tt)
            eye = torch.eye(n, dtype=u.dtype, device=u.device)
            basis = eye.reshape((n,) + (1,) * (u.ndim - 1) + (n,)).expand((n,) + u.shape)
            if create_graph:
                grads = _functional_vjps(rhs, x, tt, time_in_pass, basis)
            else:
                grads = _vjps(y, (x, tt) if time_in_pass else (x,), basis, rhs, create_graph)
        except ProblemError:
            raise
        except RuntimeError as exc:
            if "does not require grad" not in str(exc) or not _independent_of_u(rhs, tt, u, y):
                raise ProblemError("could not differentiate f with autograd to build the Jacobian; give the Problem "
                                   f"an analytic jac(u, p, t) instead. Cause: {type(exc).__name__}: {exc}") from exc
            grads = (None, None)  # f depends on neither u nor t (a zero, constant or time-only field): J = 0
        except Exception as exc:
            raise ProblemError("could not differentiate f with autograd to build the Jacobian; give the Problem an "
                               f"analytic jac(u, p, t) instead. Cause: {type(exc).__name__}: {exc}") from exc
    J = torch.zeros(u.shape + (n,), dtype=u.dtype, device=u.device) if grads[0] is None else grads[0].movedim(0, -2)
    ft = None
    if time_in_pass:
        g = grads[1]
        ft = None if g is None else (g.squeeze(-1).movedim(0, -1) if tt.ndim > 0 else g)
    elif with_time:
        ft = time_derivative(rhs, t, u)
    return J, ft


def jacobian(rhs: RHS, t: torch.Tensor, u: torch.Tensor, with_time: bool = False,
             create_graph: bool = False) -> tuple[torch.Tensor, Any]:
    """df/du with shape (*batch, n, n) and, if ``with_time``, df/dt shaped like u (None if not
    asked for or if f does not depend on t).

    Counts one Jacobian evaluation in ``rhs.njac`` (the f call inside it is not counted in nfe).
    """
    rhs.njac += 1
    if rhs.problem.jac is not None:
        J = _user_jacobian(rhs, t, u)
        return J, (time_derivative(rhs, t, u) if with_time else None)
    return _autodiff(rhs, t, u, with_time, create_graph)

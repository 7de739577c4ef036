"""``linsolve="gmres"``: matrix-free Newton-Krylov, restarted GMRES batched over members.

W v = M v - scale * (df/du) v is applied through Jacobian-vector products of f at the
linearization point (the Problem's ``jvp`` or forward-mode autodiff), so no matrix is ever
formed: memory is O(n) per member times the restart length. Every member runs its own
GMRES (its own inner products, Givens rotations and residual), all of them in the same batched
tensor ops. The system is solved in tolerance-scaled variables (x / (atol + rtol |u|)), so the
stopping test ``rms(residual) <= krylov_tol`` is in the same units as the solvers' error test.

An optional right preconditioner: ``preconditioner(u, p, t, scale)`` returns a callable
r -> P^-1 r approximating (M - scale J)^-1; it is built once per factorization (whenever the
solver would refactor a matrix). Transposed solves (gradients) use vector-Jacobian products and
a relative residual of ``min(krylov_tol, 1e-10)``.

scipy.sparse.linalg.gmres solves one system at a time on NumPy arrays; this loop exists to keep
a batch of members (and autograd-free torch tensors on any device) in one set of ops.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch.func import jvp, vjp

from sciode import RHS

from .structured import StructuredFactorization, member_scale


@dataclasses.dataclass
class Linearization:
    """The point (t, u) where df/du acts, as products instead of a matrix."""

    rhs: RHS
    t: torch.Tensor
    u: torch.Tensor  # may carry a graph (backprop through a Rosenbrock step)

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        return self.rhs.f(x, self.rhs.p, self.t)

    def jvp(self, v: torch.Tensor, point: torch.Tensor | None = None) -> torch.Tensor:
        u = self.u.detach() if point is None else point
        user = self.rhs.problem.jvp
        if user is not None:
            return user(u, self.rhs.p, self.t, v)
        return jvp(self._f, (u,), (v,))[1]

    def vjp(self, v: torch.Tensor) -> torch.Tensor:
        return vjp(self._f, self.u.detach())[1](v)[0]


@dataclasses.dataclass(frozen=True)
class KrylovOptions:
    tol: float = 1e-3
    restart: int = 30
    maxiter: int = 300
    preconditioner: Callable[..., Callable[[torch.Tensor], torch.Tensor]] | None = None


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1, keepdim=True)


def gmres(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, tol: torch.Tensor, restart: int,
          maxiter: int, counter: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve apply(x) = b for every member (rows of (*batch, n)) to ||residual||_2 <= tol (*batch, 1).

    Returns x and the per-member converged mask (*batch, 1). Starts from x = 0.
    """
    x = torch.zeros_like(b)
    tiny = torch.finfo(b.dtype).tiny
    done = 0
    r = b
    beta = _dot(r, r).sqrt()
    converged = beta <= tol
    while done < maxiter and not bool(converged.all()):
        m = min(restart, maxiter - done)
        V = [r / beta.clamp_min(tiny)]
        H = b.new_zeros(b.shape[:-1] + (m + 1, m))
        cs, sn = [], []
        g = [beta]
        k = 0
        for k in range(m):
            w = apply(V[k])
            counter.nkrylov += 1
            for j in range(k + 1):  # modified Gram-Schmidt
                h = _dot(w, V[j])
                H[..., j, k] = h[..., 0]
                w = w - h * V[j]
            h_next = _dot(w, w).sqrt()
            H[..., k + 1, k] = h_next[..., 0]
            V.append(w / h_next.clamp_min(tiny))
            col = H[..., : k + 2, k].clone()
            for j in range(k):  # earlier rotations on the new column
                a, c = col[..., j].clone(), col[..., j + 1].clone()
                col[..., j] = cs[j] * a + sn[j] * c
                col[..., j + 1] = -sn[j] * a + cs[j] * c
            a, c = col[..., k], col[..., k + 1]
            radius = torch.sqrt(a * a + c * c).clamp_min(tiny)
            cs.append(a / radius)
            sn.append(c / radius)
            col[..., k] = radius
            col[..., k + 1] = 0.0
            H[..., : k + 2, k] = col
            g.append(-sn[k][..., None] * g[k])
            g[k] = cs[k][..., None] * g[k]
            if bool((g[k + 1].abs() <= tol).all()):
                break
        steps = k + 1
        done += steps
        R = H[..., :steps, :steps]
        rhs_g = torch.cat(g[:steps], -1).unsqueeze(-1)
        y = torch.linalg.solve_triangular(R, rhs_g, upper=True).squeeze(-1)
        update = sum(y[..., j : j + 1] * V[j] for j in range(steps))
        x = torch.where(converged, x, x + update)
        r = b - apply(x)
        counter.nkrylov += 1
        beta = _dot(r, r).sqrt()
        converged = converged | (beta <= tol * (1 + 1e-6))
    return x, converged


class KrylovFactorization(StructuredFactorization):
    """Matrix-free W = M - scale*J at ``point``; ``mass`` applies M (None: identity)."""

    def __init__(self, point: Linearization, scale: Any, mass: Any, options: KrylovOptions) -> None:
        self.point, self.mass, self.options = point, mass, options
        u = point.u
        self.batch, n = u.shape[:-1], u.shape[-1]
        self.graph = u.requires_grad
        rhs = point.rhs
        self.scale = member_scale(scale, self.batch, u.dtype, u.device)
        self.weight = u.detach().abs().mul_(rhs.rtol).add_(rhs.atol)
        self.n = n
        self.counter = rhs
        self.precondition = None
        if options.preconditioner is not None:
            self.precondition = options.preconditioner(u.detach(), rhs.p, point.t, scale)
        self.bad = torch.zeros(self.batch, dtype=torch.bool, device=u.device)
        self.any_bad = False

    def _w(self, x: torch.Tensor, point: torch.Tensor | None = None) -> torch.Tensor:
        mx = x if self.mass is None else self.mass.matvec(x)
        return mx - self.scale * self.point.jvp(x, point)

    def _w_transpose(self, x: torch.Tensor) -> torch.Tensor:
        mx = x if self.mass is None else self.mass.rmatvec(x)
        return mx - self.point.vjp(self.scale * x)

    def raw_solve(self, b: torch.Tensor, transpose: bool) -> torch.Tensor:
        d = self.weight
        opts = self.options
        if transpose:  # gradients: W^T y = g, relative residual in plain variables
            tol = _dot(b, b).sqrt() * min(opts.tol, 1e-10)
            x, ok = gmres(self._w_transpose, b, tol, opts.restart, opts.maxiter, self.counter)
        else:
            pre = self.precondition or (lambda r: r)
            scaled_op = lambda y: self._w(pre(d * y)) / d  # noqa: E731  right-preconditioned, scaled
            tol = torch.full_like(b[..., :1], opts.tol * self.n**0.5)
            y, ok = gmres(scaled_op, b / d, tol, opts.restart, opts.maxiter, self.counter)
            x = pre(d * y)
        failed = ~ok[..., 0]
        if bool(failed.any()):
            self.bad = self.bad | failed
            self.any_bad = True
        return x

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self._w(x, self.point.u)

    def reason(self) -> str:
        return f"GMRES did not reach krylov_tol={self.options.tol:g} in {self.options.maxiter} iterations"

"""``linsolve="gmres"``: matrix-free Newton-Krylov, restarted GMRES batched over members.

W v = M v - scale * (df/du) v is applied through Jacobian-vector products of f at the
linearization point (the Problem's ``jvp``, else a difference quotient), so no matrix is ever
formed: memory is O(n) per member times the restart length. Every member runs its own
GMRES (its own inner products, Givens rotations and residual), all of them in the same batched
tensor ops. The system is solved in tolerance-scaled variables (x / (atol + rtol |u|)), so the
stopping test ``rms(residual) <= krylov_tol`` is in the same units as the solvers' error test.

An optional right preconditioner P ~ W, built once per factorization (whenever the solver would
refactor a matrix): ``preconditioner="ilu"`` (``ilu.py``), or a user callable
``preconditioner(u, p, t, scale)`` returning r -> P^-1 r. Transposed solves (gradients) use
vector-Jacobian products, a relative residual of ``min(krylov_tol, 1e-10)`` and P^-T where the
preconditioner has one (the ILU does; a user callable gives no transpose, so those solves run
unpreconditioned).

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
    exact: bool = False  # forward-mode products (consistent with the gradients) instead of difference quotients
    structured: Any = None  # df/du on the pattern (a linsolve.Structured), for a built-in preconditioner
    _f0: torch.Tensor | None = dataclasses.field(default=None, repr=False)

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        return self.rhs.f(x, self.rhs.p, self.t)

    def jvp(self, v: torch.Tensor, point: torch.Tensor | None = None) -> torch.Tensor:
        """(df/du) v: the user's ``jvp``, else exact forward mode when gradients flow through the
        solve (``exact``, or on ``point``, which carries the graph), else a one-sided difference
        quotient with a per-member step sqrt(eps) (1 + |u|) / |v|: one f call, where forward AD
        costs several."""
        user = self.rhs.problem.jvp
        if point is not None:
            return user(point, self.rhs.p, self.t, v) if user is not None else jvp(self._f, (point,), (v,))[1]
        u = self.u.detach()
        if user is not None:
            return user(u, self.rhs.p, self.t, v)
        if self.exact:
            return jvp(self._f, (u,), (v,))[1]
        if self._f0 is None:
            self._f0 = self._f(u)
        eps = torch.finfo(u.dtype).eps ** 0.5
        sigma = eps * (1 + torch.linalg.vector_norm(u, dim=-1, keepdim=True))
        vn = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        sigma = sigma / torch.where(vn > 0, vn, torch.ones_like(vn))
        return (self._f(u + sigma * v) - self._f0) / sigma

    def vjp(self, v: torch.Tensor) -> torch.Tensor:
        return vjp(self._f, self.u.detach())[1](v)[0]


@dataclasses.dataclass(frozen=True)
class KrylovOptions:
    tol: float = 1e-3
    restart: int = 30
    maxiter: int = 300
    preconditioner: Callable[..., Callable[[torch.Tensor], torch.Tensor]] | str | None = None


Preconditioner = Callable[[torch.Tensor], torch.Tensor]


def _identity(r: torch.Tensor) -> torch.Tensor:
    return r


def _norm(a: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(a, dim=-1, keepdim=True)


def gmres(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, tol: torch.Tensor, restart: int,
          maxiter: int, counter: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve apply(x) = b for every member (rows of (*batch, n)) to ||residual||_2 <= tol (*batch, 1).

    Arnoldi with classical Gram-Schmidt applied twice (two batched matrix products per pass), and
    the small least-squares problem solved afresh each iteration (one batched ``lstsq``), so an
    iteration costs a fixed handful of ops whatever its index. A cycle whose least-squares
    residual meets ``tol`` for every member ends the solve; otherwise the true residual restarts
    it. ``counter.nkrylov`` counts the Arnoldi iterations (one product each). Returns x (from
    x0 = 0) and the per-member converged mask (*batch, 1).

    On CPU the least-squares driver is LAPACK's SVD-based gelsd: the default gelsy gives results
    that differ in the last bits from run to run (they depend on memory alignment), which made two
    identical solves take different steps.
    """
    driver = "gelsd" if b.device.type == "cpu" else None  # CUDA has only gels
    x = torch.zeros_like(b)
    tiny = torch.finfo(b.dtype).tiny
    r, done = b, 0
    beta = _norm(r)
    floor = beta * torch.finfo(b.dtype).eps ** 0.5  # a stalled member this close counts as converged
    converged = beta <= tol
    while done < maxiter and not bool(converged.all()):
        m = min(restart, maxiter - done, b.shape[-1])  # a Krylov space cannot outgrow the state
        V = b.new_zeros(b.shape[:-1] + (m + 1, b.shape[-1]))
        H = b.new_zeros(b.shape[:-1] + (m + 1, m))
        V[..., 0, :] = r / beta.clamp_min(tiny)
        rhs_ls = b.new_zeros(b.shape[:-1] + (m + 1, 1))
        rhs_ls[..., 0, :] = beta
        y = None
        k = 0
        for k in range(m):
            w = apply(V[..., k, :])
            counter.nkrylov += 1
            basis = V[..., : k + 1, :]
            h = basis @ w.unsqueeze(-1)
            w = w - (basis.transpose(-1, -2) @ h).squeeze(-1)
            h2 = basis @ w.unsqueeze(-1)  # second pass: orthogonality to round-off
            w = w - (basis.transpose(-1, -2) @ h2).squeeze(-1)
            h_next = _norm(w)
            H[..., : k + 1, k] = (h + h2).squeeze(-1)
            H[..., k + 1, k] = h_next.squeeze(-1)
            V[..., k + 1, :] = w / h_next.clamp_min(tiny)
            Hk, gk = H[..., : k + 2, : k + 1], rhs_ls[..., : k + 2, :]
            y = torch.linalg.lstsq(Hk, gk, driver=driver).solution
            residual = _norm((gk - Hk @ y).squeeze(-1))
            exhausted = h_next <= 1e3 * torch.finfo(b.dtype).eps * beta  # breakdown: the space is invariant
            if bool(((residual <= tol) | converged | exhausted).all()):
                break
        done += k + 1
        update = (V[..., : k + 1, :].transpose(-1, -2) @ y).squeeze(-1)
        x = torch.where(converged, x, x + update)
        if bool((converged | (residual <= tol)).all()):  # the Arnoldi residual is the true one in exact arithmetic
            converged = converged | (residual <= tol)
            break
        r = b - apply(x)  # a restart: the true residual
        beta, previous = _norm(r), beta
        converged = converged | (beta <= tol * (1 + 1e-6))
        stalled = beta > 0.5 * previous  # a restart cycle that gained nothing more: round-off level
        if bool((converged | stalled).all()):
            converged = converged | (stalled & (beta <= floor))
            break
    return x, converged


class KrylovFactorization(StructuredFactorization):
    """Matrix-free W = M - scale*J at ``point``; ``mass`` applies M (None: identity); ``precondition``
    and ``precondition_transpose`` apply P^-1 and P^-T (None: no preconditioner)."""

    def __init__(self, point: Linearization, scale: Any, mass: Any, options: KrylovOptions,
                 precondition: Preconditioner | None = None,
                 precondition_transpose: Preconditioner | None = None) -> None:
        self.point, self.mass, self.options = point, mass, options
        u = point.u
        self.batch, n = u.shape[:-1], u.shape[-1]
        self.graph = point.exact  # backprop through the step: W depends on u and p through f
        rhs = point.rhs
        self.scale = member_scale(scale, self.batch, u.dtype, u.device)
        self.weight = u.detach().abs().mul_(rhs.rtol).add_(rhs.atol)
        self.n = n
        self.counter = rhs
        self.precondition, self.precondition_transpose = precondition, precondition_transpose
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
            pre = self.precondition_transpose or _identity
            tol = _norm(b) * min(opts.tol, 1e-10)
            y, ok = gmres(lambda z: self._w_transpose(pre(z)), b, tol, opts.restart, opts.maxiter, self.counter)
            x = pre(y)
        else:
            pre = self.precondition or _identity
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

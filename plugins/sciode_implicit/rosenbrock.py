"""One generic Rosenbrock stepper driven by a RosenbrockTableau (see coefficients.py).

A Rosenbrock step needs one Jacobian (with df/dt for non-autonomous f), one factorization of
W and one linear solve per stage: no Newton loop, so every member costs the same fixed
sequence of tensor ops, which suits large batches and per-member step sizes. Methods of
the RODAS family are L-stable and stiffly accurate, and need the exact Jacobian (they
are not W-methods), so it is evaluated at every step start; a rejected step retries from the
same start with the Jacobian it already has. Backprop differentiates the step as written,
Jacobian included (the autodiff Jacobian keeps its graph).

The stage equations are solved in the scaled form (M - gamma h J) U_i = gamma h f_i
+ M sum_j gamma C_ij U_j + gamma d_i h^2 df/dt (M the mass matrix, default I), so no division
by h is needed (members frozen by per-member stepping have h = 0 and get U_i = 0, u1 = u
exactly). With a singular M (an index-1 DAE) the stiffly accurate methods keep the algebraic
equations satisfied at every step. Linear combinations of the stages are one fused op per
nonzero coefficient (``torch.add(..., alpha=...)`` chains), built from the tableau once.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from sciode import RHS, Solver, StepResult

from .coefficients import RosenbrockTableau
from .krylov import KrylovOptions
from .linsolve import LinearSystem, LinsolveOptions, linear_system
from .support import failure_note, needs_grad, stage_time

Terms = tuple[tuple[int, float], ...]


def _terms(values: tuple[float, ...]) -> Terms:
    return tuple((j, float(v)) for j, v in enumerate(values) if v != 0.0)


def _combine(terms: Terms, stages: list[torch.Tensor], base: torch.Tensor | None = None) -> torch.Tensor | None:
    """base + sum_j c_j stages[j] with one op per term (None when there are no terms and no base)."""
    if not terms:
        return base
    (j0, c0), rest = terms[0], terms[1:]
    if base is not None:
        out = torch.add(base, stages[j0], alpha=c0)
    elif not rest and c0 == 1.0:
        return stages[j0]
    else:
        out = torch.mul(stages[j0], c0)
    for j, c in rest:
        out.add_(stages[j], alpha=c)
    return out


class Rosenbrock(Solver):
    """Subclasses declare ``name`` and ``tableau``."""

    tableau: ClassVar[RosenbrockTableau]
    adaptive = True
    dense_output = True
    supports_mass_matrix = True
    #: measured (benchmarks/peers.py, Robertson, rodas4 shared): blocks of 8 compiled steps ran 0.78x the eager
    #: time at 1024 members but 12.8x at 4096 (52 ms per step, against 4 ms eager; cause not found yet), while
    #: one graph per step stays at or below the eager time; so Rosenbrock steps are not fused into blocks
    compiled_blocks = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        tab = cls.tableau
        tab.check()
        cls.order, cls.error_order = tab.order, tab.error_order
        cls.stage_fractions = tuple(dict.fromkeys(tab.c))
        cls._time_index = tuple(cls.stage_fractions.index(c) for c in tab.c)
        cls._a_terms = tuple(_terms(tab.a[i]) for i in range(tab.stages))
        cls._c_terms = tuple(_terms(tuple(tab.gamma * c for c in tab.C[i])) for i in range(tab.stages))
        cls._d = tuple(float(d) for d in tab.d)
        cls._m_terms, cls._e_terms = _terms(tab.m), _terms(tab.e)
        cls._h_terms = tuple(_terms(row) for row in tab.H)

    def __init__(self, linsolve: str | None = None, preconditioner: Any = None, krylov_tol: float = KrylovOptions.tol,
                 krylov_restart: int = KrylovOptions.restart, krylov_maxiter: int = KrylovOptions.maxiter) -> None:
        self.linear = LinsolveOptions.build(linsolve, preconditioner, krylov_tol, krylov_restart, krylov_maxiter)
        self.failure_note = ""
        self._start: tuple | None = None

    def couples_members(self, problem: Any) -> str | None:
        """Why a member's step depends on the other members (so the loop must not compact the batch), or None:
        a sparse LU orders the whole batch's matrix at once, GMRES iterates until every member converges."""
        kind = self.linear.linsolve or LinearSystem._default_kind(problem)
        return f"linsolve={kind!r} solves the whole batch as one system" if kind in ("sparse", "gmres") else None

    def init(self, rhs: RHS, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor | None) -> Any:
        self.failure_note = ""
        self._start = None
        system = linear_system(rhs, self.linear)
        if system.mass.algebraic() is not None:
            system.mass.check_consistent(rhs(t0, u0) if f0 is None else f0, u0)
        return None

    def _linearize(self, rhs: RHS, system: Any, t: torch.Tensor, u: torch.Tensor, grad: bool) -> tuple[Any, Any]:
        """J and df/dt at the step start; a retry from the same (t, u) after a rejection reuses them."""
        if torch.compiler.is_compiling():  # the reuse test needs host syncs: a compiled step always linearizes
            return system.jacobian(rhs, t, u if grad else u.detach(), with_time=True, create_graph=grad)
        start = self._start  # (u, t, grad, J, df/dt): a J with a graph only serves a step that backprops
        if (start is not None and start[2] == grad and torch.equal(start[1], t)
                and (start[0] is u or torch.equal(start[0], u))):
            return start[3], start[4]
        J, ft = system.jacobian(rhs, t, u if grad else u.detach(), with_time=True, create_graph=grad)
        self._start = (u, t.detach().clone(), grad, J, ft)
        return J, ft

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> StepResult:
        tab = self.tableau
        h = dt  # 0 for members frozen by per-member stepping
        grad = needs_grad(rhs, u)
        system = linear_system(rhs, self.linear)
        J, ft = self._linearize(rhs, system, t, u, grad)
        gh = tab.gamma * h
        fact = system.factor(J, gh)
        mass = None if system.mass.identity else system.mass
        times = [stage_time(rhs, t, dt, c, i) for i, c in enumerate(self.stage_fractions)]
        ght2 = None if ft is None else ft * (tab.gamma * h * h)
        U: list[torch.Tensor] = []
        for i in range(tab.stages):
            y = _combine(self._a_terms[i], U, u)
            r = torch.mul(rhs(times[self._time_index[i]], y), gh)
            coupling = _combine(self._c_terms[i], U)
            if coupling is not None:
                r.add_(coupling if mass is None else mass.matvec(coupling))
            if ght2 is not None and self._d[i] != 0.0:
                r.add_(ght2, alpha=self._d[i])
            U.append(fact.solve(r, rhs))
        u1 = _combine(self._m_terms, U, u)
        err = _combine(self._e_terms, U)
        dense = tuple(_combine(terms, U) for terms in self._h_terms)
        if fact.any_bad:
            bad = fact.bad[..., None]
            if not torch.compiler.is_compiling():  # the note needs host syncs; a compiled step skips it
                reason = ("the Jacobian df/du has non-finite entries" if not system.isfinite(J) else fact.reason())
                if not (isinstance(dt, float) and self.failure_note):  # first failure at a fixed step, else latest
                    self.failure_note = failure_note(reason, bad, t, u)
            err = torch.where(bad, torch.full_like(err, torch.inf), err)
        return StepResult(u1, err, None, dense)

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        """(1 - s) u0 + s (u1 + (1 - s)(K1 + s (K2 + s K3 ...))), by Horner's rule."""
        s1 = 1 - theta
        inner = dense[-1]
        for k in reversed(dense[:-1]):
            inner = k + theta * inner
        return s1 * u0 + theta * (u1 + s1 * inner)

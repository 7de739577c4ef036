"""One generic Rosenbrock stepper driven by a RosenbrockTableau (see coefficients.py).

A Rosenbrock step needs one Jacobian (with df/dt for non-autonomous f), one batched LU
and one linear solve per stage: no Newton loop, so every member costs the same fixed
sequence of tensor ops, which suits large batches and per-member step sizes. Methods of
the RODAS family are L-stable and stiffly accurate, and need the exact Jacobian (they
are not W-methods), so it is evaluated at every step. Backprop differentiates the step
as written, Jacobian included (the autodiff Jacobian keeps its graph).

The stage equations are solved in the scaled form (I - gamma h J) U_i = gamma h f_i
+ sum_j gamma C_ij U_j + gamma d_i h^2 df/dt, so no division by h is needed (members
frozen by per-member stepping have h = 0 and get U_i = 0, u1 = u exactly). Linear
combinations of the stages are one tensordot each against coefficient tables built once.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from sciode import RHS, Solver, StepResult

from .coefficients import RosenbrockTableau
from .jacobian import jacobian
from .linalg import factor
from .support import failure_note, needs_grad, stage_time


def _row(values: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(j for j, v in enumerate(values) if v != 0.0)


class Rosenbrock(Solver):
    """Subclasses declare ``name`` and ``tableau``."""

    tableau: ClassVar[RosenbrockTableau]
    adaptive = True
    dense_output = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        tab = cls.tableau
        tab.check()
        cls.order, cls.error_order = tab.order, tab.error_order
        cls.stage_fractions = tuple(dict.fromkeys(tab.c))
        cls._time_index = tuple(cls.stage_fractions.index(c) for c in tab.c)
        s = tab.stages
        cls._a_rows = tuple(tuple(tab.a[i]) for i in range(s))
        cls._gc_rows = tuple(tuple(tab.gamma * c for c in tab.C[i]) for i in range(s))
        cls._outputs = (tab.m, tab.e, *tab.H)  # u1 - u0, error, dense K1, dense K2
        cls._nonzero = tuple((_row(cls._a_rows[i]), _row(cls._gc_rows[i])) for i in range(s))

    def __init__(self) -> None:
        self.failure_note = ""
        self._tables: dict[tuple, dict[str, torch.Tensor]] = {}

    def _table(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (u.dtype, u.device)
        if key not in self._tables:
            s = self.tableau.stages
            pad = lambda rows: [list(r) + [0.0] * (s - len(r)) for r in rows]  # noqa: E731
            self._tables[key] = {
                "a": torch.tensor(pad(self._a_rows), dtype=u.dtype, device=u.device),
                "gc": torch.tensor(pad(self._gc_rows), dtype=u.dtype, device=u.device),
                "out": torch.tensor([list(r) for r in self._outputs], dtype=u.dtype, device=u.device),
            }
        return self._tables[key]

    def init(self, rhs: RHS, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor | None) -> Any:
        self.failure_note = ""
        return None

    @staticmethod
    def _combination(coefficients: torch.Tensor, nonzero: tuple[int, ...], stages: list[torch.Tensor],
                     buffer: torch.Tensor | None) -> torch.Tensor:
        """sum_j coefficients[j] * stages[j] in one or two tensor ops."""
        if len(nonzero) == 1:
            j = nonzero[0]
            return stages[j] * coefficients[j]
        i = len(stages)
        stacked = buffer[:i] if buffer is not None else torch.stack(stages)
        return torch.tensordot(coefficients[:i], stacked, dims=1)

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> StepResult:
        tab = self.tableau
        h = dt  # 0 for members frozen by per-member stepping
        grad = needs_grad(rhs, u)
        J, ft = jacobian(rhs, t, u if grad else u.detach(), with_time=True, create_graph=grad)
        gh = tab.gamma * h
        fact = factor(J, gh)
        table = self._table(u)
        times = [stage_time(rhs, t, dt, c, i) for i, c in enumerate(self.stage_fractions)]
        ght2 = None if ft is None else (tab.gamma * h * h) * ft
        # without autograd the stages go into one preallocated tensor (no re-stacking per stage);
        # with autograd they stay a list (in-place writes would invalidate saved tensors)
        buffer = None if grad else torch.empty((tab.stages,) + u.shape, dtype=u.dtype, device=u.device)
        U: list[torch.Tensor] = []
        for i in range(tab.stages):
            a_nz, c_nz = self._nonzero[i]
            y = u if not a_nz else u + self._combination(table["a"][i], a_nz, U, buffer)
            r = rhs(times[self._time_index[i]], y) * gh
            if c_nz:
                r = r + self._combination(table["gc"][i], c_nz, U, buffer)
            if ght2 is not None and tab.d[i] != 0.0:
                r = r + tab.d[i] * ght2
            Ui = fact.solve(r, rhs)
            if buffer is not None:
                buffer[i] = Ui
            U.append(Ui)
        out = torch.tensordot(table["out"], buffer if buffer is not None else torch.stack(U), dims=1)
        u1, err, k1, k2 = u + out[0], out[1], out[2], out[3]
        if fact.any_bad:
            bad = fact.bad[..., None]
            if not torch.compiler.is_compiling():  # the note needs host syncs; a compiled step skips it
                reason = ("the Jacobian df/du has non-finite entries" if bool((~torch.isfinite(J.detach())).any())
                          else "the matrix I - gamma*h*J is singular")
                if not (isinstance(dt, float) and self.failure_note):  # first failure at a fixed step, else latest
                    self.failure_note = failure_note(reason, bad, t, u)
            err = torch.where(bad, torch.full_like(err, torch.inf), err)
        return StepResult(u1, err, None, (k1, k2))

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        k1, k2 = dense
        s1 = 1 - theta
        return s1 * u0 + theta * (u1 + s1 * (k1 + theta * k2))

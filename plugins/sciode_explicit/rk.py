"""One generic explicit Runge-Kutta stepper driven by a ButcherTableau.

Stage sums skip zero coefficients and fuse the step size into each term, so a
stage costs as few tensor ops as the tableau allows. ``dt`` may be a Python float
(fixed steps) or a clock tensor (adaptive, possibly per member).
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from sciode import RHS, ButcherTableau, Solver, StepResult, hermite_interpolant

Terms = tuple[tuple[int, float], ...]


def _terms(row: tuple[float, ...]) -> Terms:
    return tuple((j, a) for j, a in enumerate(row) if a != 0.0)


def weighted_sum(terms: Terms, ks: list[torch.Tensor], scale: Any) -> torch.Tensor:
    """scale * sum(a_j k_j) for a float or tensor ``scale``."""
    (j0, a0), rest = terms[0], terms[1:]
    if isinstance(scale, float):
        out = torch.mul(ks[j0], a0 * scale)
        for j, a in rest:
            out.add_(ks[j], alpha=a * scale)
        return out
    out = torch.mul(ks[j0], a0)
    for j, a in rest:
        out.add_(ks[j], alpha=a)
    return out.mul_(scale)


def continuous_extension(tab: ButcherTableau) -> tuple[tuple[float, ...], ...]:
    """The tableau's interpolant, or one built from its weights when it has none.

    FSAL tableaux get the cubic Hermite through u0, u1 and both end slopes (third
    order); others the quadratic through u0, u1 with the start slope k0 (second
    order), ``u0 + h (theta k0 + theta^2 (sum_j b_j k_j - k0))``. Both reproduce u1 at
    theta = 1, so ``saveat`` times on the step grid are exact.
    """
    if tab.interpolant is not None:
        return tab.interpolant
    if tab.fsal:
        return hermite_interpolant(tab.b)
    return tuple((float(j == 0), tab.b[j] - float(j == 0)) for j in range(tab.stages))


def increment(u: torch.Tensor, terms: Terms, ks: list[torch.Tensor], dt: Any) -> torch.Tensor:
    """u + dt * sum(a_j k_j), in as few tensor ops as the nonzero terms allow."""
    if isinstance(dt, float):
        (j0, a0), rest = terms[0], terms[1:]
        out = torch.add(u, ks[j0], alpha=a0 * dt)
        for j, a in rest:
            out.add_(ks[j], alpha=a * dt)
        return out
    if len(terms) == 1:
        j0, a0 = terms[0]
        return torch.addcmul(u, dt if a0 == 1.0 else dt * a0, ks[j0])
    (j0, a0), rest = terms[0], terms[1:]
    acc = torch.mul(ks[j0], a0)
    for j, a in rest:
        acc.add_(ks[j], alpha=a)
    return torch.addcmul(u, dt, acc)


class ExplicitRungeKutta(Solver):
    """An explicit RK method: subclasses only declare ``name`` and ``tableau`` (a ``sciode.ButcherTableau``).

    This is the public way to add a tableau solver from a plugin::

        from sciode_explicit import ExplicitRungeKutta

        class Ralston(ExplicitRungeKutta):
            name = "ralston"
            tableau = sciode.ButcherTableau.from_rows([[], [2/3]], [1/4, 3/4], [0, 2/3], order=2)

    order, adaptivity (embedded weights), FSAL and the stage times follow from the
    tableau. Without an interpolant, ``sol(t)`` is refused and ``saveat`` uses the
    low-order :func:`continuous_extension`.
    """

    tableau: ClassVar[ButcherTableau]
    supports_complex = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        tab = cls.tableau
        tab.check()
        cls.order = tab.order
        cls.error_order = tab.error_order
        cls.adaptive = tab.error is not None
        cls.dense_output = tab.interpolant is not None
        # distinct stage times, and per stage (index into them, nonzero terms of its row of A)
        cls.stage_fractions = tuple(dict.fromkeys(tab.c))
        cls._stages = tuple((cls.stage_fractions.index(tab.c[i]), _terms(tab.A[i])) for i in range(1, tab.stages))
        cls._b_terms = _terms(tab.b)
        cls._error_terms = _terms(tab.error) if tab.error is not None else None
        cls._interpolant = continuous_extension(tab)

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: Any) -> StepResult:
        if isinstance(dt, float):
            return self._scalar_step(rhs, t, u, dt, state)
        times = [t if c == 0.0 else torch.add(t, dt, alpha=c) for c in self.stage_fractions]
        ks = [state if state is not None else rhs(t, u)]
        ui = u
        for time_index, terms in self._stages:
            ui = increment(u, terms, ks, dt)
            ks.append(rhs(times[time_index], ui))
        # an FSAL tableau's last stage is evaluated at u1 itself
        u1 = ui if self.tableau.fsal else increment(u, self._b_terms, ks, dt)
        err = weighted_sum(self._error_terms, ks, dt) if self._error_terms else None
        return StepResult(u1, err, ks[-1] if self.tableau.fsal else None, tuple(ks))

    def _scalar_step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: float, state: Any) -> StepResult:
        """The same step for a float dt (a clock shared by the batch): one tensor op per nonzero term."""
        times = rhs.stage_times or [t if c == 0.0 else t + c * dt for c in self.stage_fractions]
        ks = [state if state is not None else rhs(t, u)]
        ui = u
        for time_index, terms in self._stages:
            j0, a0 = terms[0]
            ui = torch.add(u, ks[j0], alpha=a0 * dt)
            for j, a in terms[1:]:
                ui.add_(ks[j], alpha=a * dt)
            ks.append(rhs(times[time_index], ui))
        if self.tableau.fsal:
            u1 = ui
        else:
            (j0, b0), rest = self._b_terms[0], self._b_terms[1:]
            u1 = torch.add(u, ks[j0], alpha=b0 * dt)
            for j, b in rest:
                u1.add_(ks[j], alpha=b * dt)
        err = weighted_sum(self._error_terms, ks, dt) if self._error_terms else None
        return StepResult(u1, err, ks[-1] if self.tableau.fsal else None, tuple(ks))

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        P = torch.tensor(self._interpolant, dtype=theta.dtype, device=u0.device)  # (s, D)
        # the stage weights sum_d P[:, d] theta^(d+1) by Horner's rule, elementwise: a matmul or a pow would
        # round a member differently by its position in the batch (see sciode/loop/compaction.py)
        th = theta[..., None]
        inner = P[:, -1]
        for d in range(P.shape[1] - 2, -1, -1):
            inner = torch.addcmul(P[:, d], th, inner)
        weights = inner * th  # (..., s)
        k = torch.stack(list(dense), dim=-1)  # (..., n, s)
        return u0 + h * (k * weights).sum(-1)

"""Butcher tableaux: Runge-Kutta methods declared as data.

A tableau holds A, b, c, optional embedded weights (as the error weights
``b - b_hat``), and optional dense-output polynomials ``P`` such that the
continuous extension is ``u(t0 + theta*h) = u0 + h * sum_j b_j(theta) k_j`` with
``b_j(theta) = sum_d P[j, d] * theta**(d + 1)``. Solvers read these numbers; no
method is a function of its own.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction

from .errors import ProblemError

__all__ = ["ButcherTableau", "hermite_interpolant"]

Number = float | Fraction
Matrix = tuple[tuple[float, ...], ...]


def _floats(row: Sequence[Number]) -> tuple[float, ...]:
    return tuple(float(x) for x in row)


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """An explicit (strictly lower-triangular A) or implicit Runge-Kutta tableau.

    ``A`` may be given ragged (row i holding its first i entries); it is padded
    to a square matrix. ``error`` holds ``b - b_hat`` (a zero-sum vector).
    ``fsal`` means the last stage equals f at the step's end, so it is reused as
    the next step's first stage.
    """

    A: Matrix
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int
    error: tuple[float, ...] | None = None
    error_order: int | None = None
    interpolant: Matrix | None = None
    fsal: bool = False

    @classmethod
    def from_rows(cls, A: Sequence[Sequence[Number]], b: Sequence[Number], c: Sequence[Number], order: int,
                  *, b_hat: Sequence[Number] | None = None, error_order: int | None = None,
                  interpolant: Sequence[Sequence[Number]] | None = None, fsal: bool = False) -> "ButcherTableau":
        s = len(b)
        square = tuple(_floats(list(row) + [0.0] * (s - len(row))) for row in A)
        if len(square) != s:
            raise ProblemError(f"tableau A must have {s} rows (one per stage); got {len(square)}")
        error = None if b_hat is None else tuple(float(Fraction(x) - Fraction(y)) for x, y in zip(b, b_hat))
        interp = None if interpolant is None else tuple(_floats(row) for row in interpolant)
        return cls(square, _floats(b), _floats(c), order, error, error_order, interp, fsal)

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def explicit(self) -> bool:
        return all(self.A[i][j] == 0.0 for i in range(self.stages) for j in range(i, self.stages))

    def check(self, tol: float = 1e-12) -> None:
        """Raise ProblemError unless the tableau is internally consistent.

        Rows of A sum to c, b sums to 1, error weights sum to 0, and the
        interpolant reproduces b at theta = 1 and has one row per stage.
        """
        for i, (row, ci) in enumerate(zip(self.A, self.c)):
            if abs(sum(row) - ci) > tol:
                raise ProblemError(f"tableau row {i} of A sums to {sum(row)!r}, but c[{i}] = {ci!r}")
        if abs(sum(self.b) - 1.0) > tol:
            raise ProblemError(f"tableau weights b sum to {sum(self.b)!r}, expected 1")
        if self.error is not None:
            if len(self.error) != self.stages or abs(sum(self.error)) > tol:
                raise ProblemError(f"tableau error weights must have {self.stages} entries summing to 0; "
                                   f"got {self.error}")
        if self.interpolant is not None:
            if len(self.interpolant) != self.stages:
                raise ProblemError(f"tableau interpolant must have {self.stages} rows; got {len(self.interpolant)}")
            for j, row in enumerate(self.interpolant):
                if abs(sum(row) - self.b[j]) > tol:
                    raise ProblemError(f"tableau interpolant row {j} gives {sum(row)!r} at theta=1, "
                                       f"expected b[{j}] = {self.b[j]!r}")
        if self.fsal:
            if self.A[-1][: self.stages - 1] != self.b[: self.stages - 1] or self.b[-1] != 0.0 or self.c[-1] != 1.0:
                raise ProblemError("an FSAL tableau's last row of A must equal b (with b[-1] = 0 and c[-1] = 1)")


def hermite_interpolant(b: Sequence[Number], first: int = 0, last: int | None = None) -> tuple[tuple[float, ...], ...]:
    """Cubic Hermite dense output expressed as stage polynomials.

    Uses u0, u1 = u0 + h*sum(b_j k_j), f(u0) = k[first] and f(u1) = k[last]
    (an FSAL method's last stage). Returns P with rows (theta, theta^2, theta^3).
    """
    s = len(b)
    last = s - 1 if last is None else last
    rows = []
    for j in range(s):
        bj = float(b[j])
        # h01(theta) = 3t^2 - 2t^3 multiplies (u1 - u0)/h = sum b_j k_j
        coeffs = [0.0, 3.0 * bj, -2.0 * bj]
        if j == first:  # h10(theta) = t - 2t^2 + t^3
            coeffs = [coeffs[0] + 1.0, coeffs[1] - 2.0, coeffs[2] + 1.0]
        if j == last:  # h11(theta) = -t^2 + t^3
            coeffs = [coeffs[0], coeffs[1] - 1.0, coeffs[2] + 1.0]
        rows.append(tuple(coeffs))
    return tuple(rows)

"""``bdf``: variable-order (1-5) BDF in the quasi-constant-step form, with NDF error constants.

The method of Shampine & Reichelt (the MATLAB ode15s / scipy ``BDF`` formulation): the history
is kept as backward differences D of the solution on an equally spaced grid; when the step
changes, D is re-interpolated onto the new spacing by a (q+1) x (q+1) matrix (``_step_matrix``),
so the formulas keep constant coefficients. A step predicts y0 = sum D[0..q], then solves
    M d - c f(t1, y0 + d) + M psi = 0,   c = h / alpha_q,   psi = sum_j gamma_j D_j / alpha_q
by simplified Newton on W = M - c J, and the local error is error_const[q] * d. The kappa
coefficients are those of the numerical differentiation formulas (Klopfenstein; Shampine &
Reichelt 1997), which enlarge the stability region at orders 1-4 compared to plain BDF.

Work: the Jacobian is reused across steps until Newton converges slowly or fails, and W is
refactored only when c has drifted by more than ``refactor_ratio`` from the factored value
(as CVODE does), so most steps cost f calls and back-substitutions only.

Order and step: the core loop's controller sets h from the error it is handed; the error
returned is the order-q estimate rescaled to the controller's exponent, so the step factor is
err_q^(-1/(q+1)). After q+1 steps at one order the estimates of orders q-1 and q+1 (from D) are
compared, and the order with the largest admissible step is taken (it is handed to the
controller the same way). ``order=k`` fixes the order (for convergence tests); ``max_order``
caps it. The order is shared by the batch; steps may be per member.

Dense output: the interpolating polynomial of the differences, order q. Gradients (backprop):
the converged correction d* gets the derivative of one more Newton step with autograd (the
implicit-function-theorem gradient, with a fresh Jacobian at the solution) while its value stays
d*, so a solve with gradients follows exactly the trajectory of one without (checkpointed replays
agree with backprop); the difference update is differentiable.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from sciode import RHS, ProblemError, Solver, StepResult

from .krylov import KrylovOptions
from .linsolve import LinsolveOptions, linear_system
from .newton import newton_solve, newton_tolerance
from .support import failure_note, needs_grad, stage_time

MAX_ORDER = 5
_KAPPA = (0.0, -0.1850, -1 / 9, -0.0823, -0.0415, 0.0)
_GAMMA = tuple(sum(1.0 / j for j in range(1, q + 1)) for q in range(MAX_ORDER + 1))
_ALPHA = tuple((1 - k) * g for k, g in zip(_KAPPA, _GAMMA))
_ERROR_CONST = tuple(k * g + 1 / (q + 1) for q, (k, g) in enumerate(zip(_KAPPA, _GAMMA)))


def _r_matrix(order: int, factor: np.ndarray) -> np.ndarray:
    """Shampine & Reichelt's R(order, factor): (..., q+1, q+1) for factor shaped (..., 1, 1)."""
    i = np.arange(1, order + 1)[:, None]
    j = np.arange(1, order + 1)[None, :]
    m = np.zeros(factor.shape[:-2] + (order + 1, order + 1))
    m[..., 1:, 1:] = (i - 1 - factor * j) / i
    m[..., 0, :] = 1.0
    return np.cumprod(m, axis=-2)


@functools.lru_cache(maxsize=None)
def _u_matrix(order: int) -> np.ndarray:
    return _r_matrix(order, np.ones((1, 1)))


@functools.lru_cache(maxsize=None)
def _order_matrices(order: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, b) for order q on an unchanged grid: S @ D gives, in its first two rows, the predictor
    sum_j D_j and psi = sum_j gamma_j D_j / alpha_q, and in the rest A @ D with D_new = A @ D + b d^T,
    the difference update after the step: D_new[q+2] = d - D[q+1], D_new[q+1] = d and
    D_new[i] = d + D[i] + ... + D[q] for i <= q."""
    rows = MAX_ORDER + 3
    A = np.eye(rows)
    A[: order + 1, : order + 1] = np.triu(np.ones((order + 1, order + 1)))
    A[order + 1, order + 1] = 0.0
    A[order + 2, order + 2], A[order + 2, order + 1] = 0.0, -1.0
    P = np.zeros((2, rows))
    P[0, : order + 1] = 1.0
    P[1, 1 : order + 1] = [g / _ALPHA[order] for g in _GAMMA[1 : order + 1]]
    b = np.zeros((rows, 1))
    b[: order + 3] = 1.0
    return np.concatenate([P, A]), b


def _step_matrix(order: int, factor: Any) -> np.ndarray:
    """S of ``_order_matrices`` with the re-interpolation of D onto a grid with step ``factor`` times
    the old one folded in (S R, R acting on D[0..q]): one small matmul per step applies both.

    The (q+1) x (q+1) matrices are built in NumPy (a few microseconds, where torch would spend a
    dozen op dispatches); a per-member factor (*batch, 1) gives S per member.
    """
    S = _order_matrices(order)[0]
    if isinstance(factor, torch.Tensor):
        f = factor.detach().cpu().double().numpy()[..., None]  # (*batch, 1) -> (*batch, 1, 1)
    elif factor == 1.0:
        return S
    else:
        f = np.full((1, 1), float(factor))
    RU = np.swapaxes(_r_matrix(order, f) @ _u_matrix(order), -1, -2)
    head = S[:, : order + 1] @ RU  # (..., rows, q+1)
    tail = np.broadcast_to(S[:, order + 1 :], head.shape[:-1] + (S.shape[1] - order - 1,))
    return np.concatenate([head, tail], -1)


class BDF(Solver):
    name = "bdf"
    order = MAX_ORDER
    error_order = MAX_ORDER - 1
    adaptive = True
    dense_output = True
    supports_mass_matrix = True
    stage_fractions = (1.0,)
    summary = ("Variable-order (1-5) quasi-constant-step BDF/NDF (as scipy's BDF, MATLAB's ode15s); Jacobian and "
               "factorization reused across steps; mass matrices and index-1 DAEs; every linsolve.")
    reference = "Shampine & Reichelt, SIAM J. Sci. Comput. 18 (1997) 1-22; Byrne & Hindmarsh (1975)"

    def __init__(self, order: int | None = None, max_order: int = MAX_ORDER, max_iters: int = 4,
                 refactor_ratio: float = 0.3, linsolve: str | None = None, preconditioner: Any = None,
                 krylov_tol: float = KrylovOptions.tol, krylov_restart: int = KrylovOptions.restart,
                 krylov_maxiter: int = KrylovOptions.maxiter) -> None:
        for name, value in (("order", order), ("max_order", max_order)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5):
                extra = " or None" if name == "order" else ""
                raise ProblemError(f"{name} must be an int in 1..5{extra}; got {value!r}")
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
            raise ProblemError(f"max_iters must be a positive int; got {max_iters!r}")
        if not isinstance(refactor_ratio, (int, float)) or not 0 <= refactor_ratio < 1:
            raise ProblemError(f"refactor_ratio must be a number in [0, 1); got {refactor_ratio!r}")
        self.fixed_order, self.max_order = order, max_order if order is None else order
        self.max_iters, self.refactor_ratio = max_iters, float(refactor_ratio)
        self.linear = LinsolveOptions.build(linsolve, preconditioner, krylov_tol, krylov_restart, krylov_maxiter)
        self.failure_note = ""
        self._constants: dict[tuple, tuple[torch.Tensor, ...]] = {}

    def init(self, rhs: RHS, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor | None) -> dict[str, Any]:
        self.failure_note = ""
        system = linear_system(rhs, self.linear)
        f0 = rhs(t0, u0) if f0 is None else f0
        if system.mass.algebraic() is not None:
            system.mass.check_consistent(f0, u0)
        D = torch.zeros(u0.shape[:-1] + (MAX_ORDER + 3, u0.shape[-1]), dtype=u0.dtype, device=u0.device)
        D = torch.cat([u0.unsqueeze(-2), f0.unsqueeze(-2), D[..., 2:, :]], dim=-2)  # D1 = h f0 with h = 1
        with torch.no_grad():
            J = system.jacobian(rhs, t0, u0.detach())[0]
        # h: the step D refers to (a float for a shared clock); since: steps at this order;
        # lu: (factorization, c) or None
        h = 1.0 if t0.ndim == 0 else torch.ones_like(t0)
        return dict(D=D, h=h, order=self.fixed_order or 1, since=0, J=J, fresh=True, lu=None)

    def _factorization(self, system: Any, state: dict, J: Any, c: Any, fresh: bool) -> Any:
        cached = state["lu"]
        if not fresh and cached is not None:
            ratio = c / cached[1]
            drift = float((ratio - 1).abs().max()) if isinstance(ratio, torch.Tensor) else abs(ratio - 1)
            if drift <= self.refactor_ratio:
                return cached
        return system.factor(J, c), c

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: dict) -> StepResult:
        q = state["order"]
        system = linear_system(rhs, self.linear)
        mass = system.mass
        h_ref = state["h"]
        safe_dt = torch.where(dt == 0, h_ref, dt) if isinstance(dt, torch.Tensor) else dt
        D = state["D"]
        S = torch.as_tensor(_step_matrix(q, safe_dt / h_ref), dtype=D.dtype, device=D.device)
        moved = S @ D  # the predictor, psi and the update's A @ D, on the new step's grid
        y_pred, psi = moved[..., 0, :], moved[..., 1, :]
        t1 = stage_time(rhs, t, dt, 1.0, 0)
        c = dt / _ALPHA[q]
        update_b, mask = self._order_constants(q, u)
        tol = newton_tolerance(rhs.rtol, u.dtype)
        J, fresh = state["J"], state["fresh"]
        with torch.no_grad():
            yp, ps = y_pred.detach(), psi.detach()
            scale = yp.abs().mul_(rhs.rtol).add_(rhs.atol)
            c_t = torch.as_tensor(c, dtype=yp.dtype, device=yp.device)

            def residual(d: torch.Tensor | None) -> torch.Tensor:  # G(d) = M (d + psi) - c f(t1, y_pred + d)
                if d is None:
                    return torch.addcmul(mass.matvec(ps), c_t, rhs(t1, yp), value=-1)
                return torch.addcmul(mass.matvec(d + ps), c_t, rhs(t1, yp + d), value=-1)

            fact, c_lu = self._factorization(system, state, J, c, fresh)
            out = newton_solve(residual, None, fact, rhs, scale, tol, self.max_iters)
            if out.any_failed and not fresh:  # stale Jacobian: refresh it at the predictor and retry
                J, fresh = system.jacobian(rhs, t1, yp)[0], True
                fact, c_lu = system.factor(J, c), c
                out = newton_solve(residual, None, fact, rhs, scale, tol, self.max_iters)
        d = out.z
        if needs_grad(rhs, u) or psi.requires_grad:
            with torch.no_grad():
                exact = system.factor(system.jacobian(rhs, t1, yp + d)[0], c)
            step = exact.solve(mass.matvec(d + psi) - c * rhs(t1, y_pred + d), rhs)
            d = d - (step - step.detach())  # the value stays d* (as without gradients), the derivative is the IFT one
        y1 = y_pred + d
        err = _ERROR_CONST[q] * d
        D_new = torch.addcmul(moved[..., 2:, :], update_b, d.unsqueeze(-2))
        new_order, err = self._choose_order(rhs, q, state["since"], D_new, err, scale)
        if out.any_failed or fact.any_bad:
            with torch.no_grad():
                failed = out.failed | fact.bad[..., None]
                reason = fact.reason() if bool(fact.bad.any()) else out.reason
                if not (isinstance(dt, float) and self.failure_note):
                    self.failure_note = failure_note(reason, failed, t, u)
                err = torch.where(failed, torch.full_like(err, torch.inf), err)
        since = state["since"] + 1 if new_order == q else 0
        per_member = isinstance(safe_dt, torch.Tensor) and isinstance(h_ref, torch.Tensor)
        h = safe_dt.expand_as(h_ref) if per_member else safe_dt
        new_state = dict(D=D_new, h=h, order=new_order, since=since, J=J, fresh=False, lu=(fact, c_lu))
        if out.max_rate > 0.5:  # slow convergence: a fresh Jacobian for the next step
            new_state["J"], new_state["fresh"] = system.jacobian(rhs, t1, y1.detach())[0], True
        return StepResult(y1, err, new_state, (D_new[..., 1 : MAX_ORDER + 1, :] * mask,))

    def _order_constants(self, q: int, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (order, dtype, device), built once: the update vector b (``_order_matrices``) and the
        dense output's order mask."""
        key = (q, u.dtype, u.device)
        if key not in self._constants:
            mask = (np.arange(MAX_ORDER) < q).astype(float)[:, None]
            self._constants[key] = tuple(torch.as_tensor(x, dtype=u.dtype, device=u.device)
                                         for x in (_order_matrices(q)[1], mask))
        return self._constants[key]

    def _choose_order(self, rhs: RHS, q: int, since: int, D_new: torch.Tensor, err: torch.Tensor,
                      scale: torch.Tensor) -> tuple[int, torch.Tensor]:
        """The next order and the error to hand the controller (see the module docstring).

        The norms here only rank the orders and convert exponents, so they use the Newton
        weights (atol + rtol |y_pred|) and come to the host in one transfer each."""
        with torch.no_grad():
            weight = scale.reciprocal()

            def norm(x: torch.Tensor) -> np.ndarray:
                return np.maximum(rhs.norm(x.detach() * weight).cpu().numpy().astype(np.float64), 1e-10)

            norm_q = norm(err)
            k = self.error_order + 1
            best, best_norm = q, norm_q
            if self.fixed_order is None and since + 1 >= q + 1 and bool((norm_q <= 1).all()):
                candidates = []
                if q > 1:
                    candidates.append((q - 1, _ERROR_CONST[q - 1] * D_new[..., q, :]))
                if q < self.max_order:
                    candidates.append((q + 1, _ERROR_CONST[q + 1] * D_new[..., q + 2, :]))
                score = float(norm_q.max()) ** (-1 / (q + 1))
                for order, estimate in candidates:
                    n = norm(estimate)
                    s = float(n.max()) ** (-1 / (order + 1))
                    if s > score * (1.1 if order < q else 1.2):  # change only for a clearly larger step
                        best, best_norm, score = order, n, s
            if best == q and q + 1 == k:
                return best, err
            with np.errstate(invalid="ignore", over="ignore"):  # a failed step's inf stays non-finite
                ratio = best_norm ** (k / (best + 1)) / norm_q  # controller factor -> norm^(-1/(best+1))
        if ratio.ndim == 0:
            return best, err * float(ratio)
        return best, err * torch.as_tensor(ratio, dtype=err.dtype, device=err.device)

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        """u1 + sum_j D_j prod_{i<j} (theta - 1 + i) / (i + 1): the order-q polynomial through the history."""
        (D,) = dense
        out, prod = u1, None
        for j in range(D.shape[-2]):
            x = (theta - 1 + j) / (1 + j)
            prod = x if prod is None else prod * x
            out = out + prod * D[..., j, :]
        return out

"""One generic stepper for the theta family (implicit Euler, trapezoid), solved by Newton.

Each step solves z = u0 + (1 - theta) h f0 + theta h f(t1, z) with the simplified Newton
iteration of ``newton.py``, started from the explicit predictor u0 + h f0 and, if that
fails, once more from u0 (after refreshing a stale Jacobian). The Jacobian is kept in the solver state and reused across
steps while Newton converges fast (rate below ``refresh_rate``); it is recomputed at the
step start when convergence was slow, and once within a step whose Newton iteration failed
with a stale Jacobian. At a fixed step the LU factorization itself is reused across steps
too (W = I - theta h J does not change). A member whose Newton iteration still fails gets
an infinite error: adaptive runs reject and shrink, fixed-step runs report FAILURE.

Gradients (backprop): the iteration runs without autograd; when gradients are needed
one more Newton step is taken *with* autograd from the detached converged iterate z*,
using a Jacobian evaluated at z*:  z = z* - W(z*)^-1 G(z*, u0, p).  Its derivative with
respect to (u0, p) is -W^-1 dG/d(u0, p), exactly the implicit-function-theorem gradient of
the converged stage, at the cost of one f call, one Jacobian and one linear solve per step
and without differentiating through (or storing) the iterations. This works for any f
(nn.Module parameters, dict p) without listing the inputs of a custom autograd.Function.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from sciode import RHS, ProblemError, Solver, StepResult

from .coefficients import ThetaMethod
from .krylov import KrylovOptions
from .linsolve import LinearSystem, LinsolveOptions, linear_system
from .newton import newton_solve, newton_tolerance
from .support import failure_note, needs_grad, safe_step, stage_time


def _bad_matrix_reason(system: LinearSystem, J: Any, fact: Any) -> str:
    if not system.isfinite(J):
        return "the Jacobian df/du has non-finite entries"
    return fact.reason()


class ThetaSolver(Solver):
    """Subclasses declare ``name`` and ``method`` (a ThetaMethod)."""

    method: ClassVar[ThetaMethod]
    adaptive = True
    dense_output = True
    stage_fractions = (1.0,)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.order = cls.method.order
        cls.error_order = cls.method.error_order

    def __init__(self, max_iters: int = 7, newton_tol: float | None = None, reuse_jacobian: bool = True,
                 refresh_rate: float = 0.3, linsolve: str | None = None, preconditioner: Any = None,
                 krylov_tol: float = KrylovOptions.tol, krylov_restart: int = KrylovOptions.restart,
                 krylov_maxiter: int = KrylovOptions.maxiter) -> None:
        if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
            raise ProblemError(f"max_iters must be a positive int; got {max_iters!r}")
        if newton_tol is not None and not (isinstance(newton_tol, (int, float)) and 0 < newton_tol < 1):
            raise ProblemError(f"newton_tol must be None or a number in (0, 1); got {newton_tol!r}")
        if not isinstance(refresh_rate, (int, float)) or not 0 < refresh_rate < 1:
            raise ProblemError(f"refresh_rate must be a number in (0, 1); got {refresh_rate!r}")
        self.max_iters, self.newton_tol = max_iters, newton_tol
        self.reuse_jacobian, self.refresh_rate = bool(reuse_jacobian), float(refresh_rate)
        self.linear = LinsolveOptions.build(linsolve, preconditioner, krylov_tol, krylov_restart, krylov_maxiter)
        self.failure_note = ""

    def init(self, rhs: RHS, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor | None) -> dict[str, Any]:
        self.failure_note = ""
        f0 = rhs(t0, u0) if f0 is None else f0
        with torch.no_grad():
            J = linear_system(rhs, self.linear).jacobian(rhs, t0, u0.detach())[0]
        zero = torch.zeros_like(t0)
        return dict(f0=f0, f_prev=torch.zeros_like(f0), h_prev=zero, J=J, refresh=False, lu=None)

    def start_state(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, state: Any) -> Any:
        return self.init(rhs, t, u, None)

    # -- the step ----------------------------------------------------------------------------
    def _factor(self, system: LinearSystem, state: dict, J: Any, theta_h: Any, fresh: bool) -> Any:
        cached = state.get("lu")
        if isinstance(theta_h, float) and not fresh and cached is not None and cached[1] == theta_h:
            return cached[0]  # fixed step, same Jacobian: reuse the LU across steps
        return system.factor(J, theta_h)

    def step(self, rhs: RHS, t: torch.Tensor, u: torch.Tensor, dt: Any, state: dict) -> StepResult:
        m = self.method
        theta = m.theta
        t1 = stage_time(rhs, t, dt, 1.0, 0)
        h = dt  # 0 for members frozen by per-member stepping: their Newton converges at once to z = u
        theta_h = theta * h
        f0 = state["f0"]
        tol = self.newton_tol or newton_tolerance(rhs.rtol, u.dtype)
        system = linear_system(rhs, self.linear)
        with torch.no_grad():
            u_d, f0_d = u.detach(), f0.detach()
            base = u_d if theta == 1.0 else u_d + ((1 - theta) * h) * f0_d
            scale = u_d.abs().mul_(rhs.rtol).add_(rhs.atol)
            residual = lambda z: z - base - theta_h * rhs(t1, z)  # noqa: E731
            J, fresh = state["J"], False
            if state["refresh"] or not self.reuse_jacobian:
                J, fresh = system.jacobian(rhs, t, u_d)[0], True
            fact = self._factor(system, state, J, theta_h, fresh)
            predictor = u_d + h * f0_d  # follow the current slope (the solution is smooth once past transients)
            out = newton_solve(residual, predictor, fact, rhs, scale, tol, self.max_iters)
            if bool(out.failed.any()) or fact.any_bad:
                if not fresh:  # stale Jacobian: refresh it
                    J, fresh = system.jacobian(rhs, t, u_d)[0], True
                    fact = system.factor(J, theta_h)
                # retry from u0 itself, the safe start in a stiff transient
                out = newton_solve(residual, u_d, fact, rhs, scale, tol, self.max_iters)
            bad = fact.bad[..., None]
            failed = out.failed | bad
            if bool(failed.any()):
                reason = _bad_matrix_reason(system, J, fact) if bool(bad.any()) else out.reason
                self._note(failure_note(reason, failed, t, u), dt)
        z = out.z
        base_g = base
        if needs_grad(rhs, u) or f0.requires_grad:
            z, base_g = self._implicit_step(system, rhs, t1, u, f0, h, theta, z)
        f1 = (z - base_g) / (theta * safe_step(h))
        with torch.no_grad():
            err = self._error(f0.detach(), f1.detach(), state, h, fact)
            err = torch.where(failed, torch.full_like(err, torch.inf), err)
        new_state = dict(f0=f1, f_prev=f0, h_prev=torch.as_tensor(h, dtype=u.dtype).expand_as(state["h_prev"]),
                         J=J, refresh=bool((out.rate > self.refresh_rate).any()),
                         lu=(fact, theta_h) if isinstance(theta_h, float) else None)
        return StepResult(z, err, new_state, (f0, f1) if m.hermite else None)

    def _implicit_step(self, system: LinearSystem, rhs: RHS, t1: torch.Tensor, u: torch.Tensor, f0: torch.Tensor,
                       h: Any, theta: float, z_star: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One Newton step with autograd on, from the converged z* and with W at z*."""
        with torch.no_grad():
            fact = system.factor(system.jacobian(rhs, t1, z_star)[0], theta * h)
        base = u if theta == 1.0 else u + ((1 - theta) * h) * f0
        G = z_star - base - (theta * h) * rhs(t1, z_star)
        return z_star - fact.solve(G, rhs), base

    def _note(self, note: str, dt: Any) -> None:
        """Keep the first failure of a fixed-step run (later steps start from a failed state) and
        the latest of an adaptive run (earlier ones were recovered by shrinking the step)."""
        if not (isinstance(dt, float) and self.failure_note):
            self.failure_note = note

    def _error(self, f0: torch.Tensor, f1: torch.Tensor, state: dict, h: Any, fact: Any) -> torch.Tensor:
        """Local error estimate, filtered through W^-1 (see ThetaMethod)."""
        est = (0.5 * h) * (f1 - f0)
        if self.method.history_error:
            h_prev = state["h_prev"]
            have = h_prev > 0
            hp = torch.where(have, h_prev, torch.ones_like(h_prev))
            third = ((f1 - f0) / safe_step(h) - (f0 - state["f_prev"]) / hp) * (h**3 / 6) / (h + hp)
            est = torch.where(have, third, est)
        return fact.solve(est)

    def interpolate(self, theta: torch.Tensor, h: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor,
                    dense: Any) -> torch.Tensor:
        if dense is None:
            return torch.lerp(u0, u1, theta)
        f0, f1 = dense
        t2, t3 = theta * theta, theta * theta * theta
        h00, h01 = 1 - 3 * t2 + 2 * t3, 3 * t2 - 2 * t3
        h10, h11 = theta - 2 * t2 + t3, t3 - t2
        return h00 * u0 + h01 * u1 + h * (h10 * f0 + h11 * f1)

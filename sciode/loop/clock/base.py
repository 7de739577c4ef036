"""What every clock shares: the loop state it starts, freezing members, targets and tstops, norms."""
from __future__ import annotations

import math
from typing import Any

import torch

from ...problems import ODEProblem
from ...retcode import ReturnCode
from ...solver import RHS, Solver
from ..options import LoopOptions
from ..state import LoopState

#: consecutive non-finite attempts after which a member is declared UNSTABLE
FREEZE_AFTER = 8


def tree_where(mask: torch.Tensor, new: Any, old: Any) -> Any:
    """Per-member select over a solver state (tensors whose leading dims are the member dims)."""
    if new is None or old is None:
        return new
    if isinstance(new, torch.Tensor):
        if new.ndim < mask.ndim:  # a shared quantity (e.g. a scalar counter): keep the new one
            return new
        return torch.where(mask.reshape(mask.shape + (1,) * (new.ndim - mask.ndim)), new, old)
    if isinstance(new, (tuple, list)):
        return type(new)(tree_where(mask, a, b) for a, b in zip(new, old))
    if isinstance(new, dict):
        return {k: tree_where(mask, v, old[k]) for k, v in new.items()}
    return new


def _code(value: ReturnCode, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(value.value, dtype=torch.int8, device=like.device)


class _Clock:
    """What every clock shares: the span, the stops, the norm and member bookkeeping."""

    per_member = False
    adaptive = True

    def __init__(self, problem: ODEProblem, solver: Solver, opts: LoopOptions, rhs: RHS) -> None:
        self.problem, self.solver, self.opts, self.rhs = problem, solver, opts, rhs
        self.t0, self.t1 = problem.tspan
        self.direction = problem.direction
        self.batch_shape = problem.batch_shape
        u0 = problem.u0
        self.time_dtype = u0.real.dtype if u0.is_complex() else u0.dtype
        self.device = u0.device
        self.eps = torch.finfo(self.time_dtype).eps
        self.complex = u0.is_complex()
        #: (rtol, atol) of the error's scale; a compiled solve makes them 0-d tensors, inputs of its graphs
        #: rather than constants, so that solves at other tolerances reuse the graphs
        self.tolerances: tuple[Any, Any] = (rhs.rtol, rhs.atol)
        stops = [] if opts.tstops is None else [float(x) for x in opts.tstops]
        self.stops = stops + [self.t1]
        #: a terminal event's landing time (float for a shared clock, tensor per member), set by the events
        self.landing: Any = None
        #: a shared clock's record that no member is running any more (saves a host sync per step)
        self.finished = False
        #: set by commit: the step landed on a tstop (True, or a per-member mask), so the solver restarts
        self.restarted: Any = False
        self.at_stop: Any = False
        self._fractions: torch.Tensor | None = None
        k = min(solver.order, solver.error_order or solver.order - 1) + 1 if solver.adaptive else 1
        self.k = max(k, 1)

    # -- shared helpers --------------------------------------------------------------------------
    def initial_time(self) -> torch.Tensor:
        return torch.tensor(self.t0, dtype=self.time_dtype, device=self.device)

    def new_state(self, u0: torch.Tensor, solver_state: Any, dt: Any, t: Any, err_prev: Any) -> LoopState:
        status = torch.zeros(self.batch_shape, dtype=torch.int8, device=self.device)
        t_stop = torch.full(self.batch_shape, self.t0, dtype=self.time_dtype, device=self.device)
        streak = torch.zeros(self.batch_shape, dtype=torch.int32, device=self.device)
        return LoopState(t=t, dt=dt, u=u0, solver_state=solver_state, err_prev=err_prev, status=status,
                         t_stop=t_stop, nonfinite_streak=streak, dt_before_streak=dt,
                         frozen_members=torch.zeros_like(status, dtype=torch.bool))

    def fail_at_start(self, st: LoopState, f0: torch.Tensor) -> None:
        """Members whose f(t0, u0) is not finite are UNSTABLE before any step."""
        bad = ~torch.isfinite(f0.detach()).all(-1)
        if bool(bad.any()):
            self.freeze(st, bad, ReturnCode.UNSTABLE, self.t0)

    def freeze(self, st: LoopState, members: torch.Tensor, code: ReturnCode, t: Any) -> None:
        """Stop ``members`` (still running) with ``code`` at time ``t``; the others go on."""
        members = members & st.running
        st.status = torch.where(members, _code(code, st.status), st.status)
        st.t_stop = torch.where(members, t[..., 0] if isinstance(t, torch.Tensor) else t, st.t_stop)
        st.frozen_members = st.frozen_members | members
        st.frozen_any = True
        self.rhs.norm = self.batch_norm_fn(st.running)
        self.finished = not bool(st.running.any())

    def stop_all(self, st: LoopState, code: ReturnCode) -> None:
        """Every running member ends with ``code`` (the batch reached t1, or a coupled stop)."""
        st.status = torch.where(st.running, _code(code, st.status), st.status)
        self.finished = True

    def blockable(self, st: LoopState) -> bool:
        """Whether a compiled block of plain steps may take the next steps (only a shared clock's can)."""
        return False

    def signed(self, x: torch.Tensor) -> torch.Tensor:
        """``x * direction`` (exact for direction +-1, so forward solves skip the op)."""
        return x if self.direction > 0 else x.neg()

    def clamp_size(self, dt: torch.Tensor) -> torch.Tensor:
        """Tensor step sizes held within ``max_step`` and ``min_step``, signed in the direction of time."""
        opts = self.opts
        size = dt.abs()
        if opts.max_step is not None:
            size = size.clamp_max(opts.max_step)
        if opts.min_step is not None:
            size = size.clamp_min(opts.min_step)
        return self.signed(size)

    def collapsing(self, new_dt: torch.Tensor, step: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Where a rejected step has collapsed (tensor form of the shared clock's test in ``propose``): the
        next size underflows against t, or the rejected step was already at ``min_step``."""
        collapse = new_dt.abs() <= 16 * self.eps * t.abs().clamp_min(1.0)
        if self.opts.min_step is not None:
            collapse = collapse | (step.abs() <= self.opts.min_step * (1 + 4 * self.eps))
        return collapse

    def stage_clock(self, t: float, step: float) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The step's start time and its stage times as tensors, in two tensor ops."""
        if self._fractions is None:
            fractions = (0.0, *self.solver.stage_fractions)
            self._fractions = torch.tensor(fractions, dtype=self.time_dtype, device=self.device)
        times = torch.mul(self._fractions, step).add_(t).unbind(0)
        return times[0], (times[1:] if len(times) > 1 else None)

    def target(self, t: float) -> tuple[float, bool]:
        """The next stop ahead of ``t`` (a tstop, a terminal event's landing time, or t1) and
        whether it is a tstop."""
        d = self.direction
        ahead = next(s for s in self.stops if (s - t) * d > 0 or s == self.t1)
        if self.landing is not None and (self.landing - ahead) * d < 0:
            return self.landing, False
        return ahead, ahead != self.t1

    def beside(self, t: float, side: float) -> float:
        """The time next to ``t`` in the clock's dtype, on the ``side`` (+1 later, -1 earlier) of travel.

        A step that lands on a tstop ends just before it and the next starts just after it (the
        reported time is the tstop itself), so f is never evaluated at a discontinuity from the
        wrong side; the solver state restarts there.
        """
        x = torch.tensor(t, dtype=self.time_dtype)
        return float(torch.nextafter(x, torch.tensor(side * self.direction * math.inf, dtype=self.time_dtype)))

    def reported_time(self, st: LoopState, last: Any, target: Any) -> Any:
        """The time an accepted step is saved at: a tstop itself, not the time just beyond it."""
        return target if last else st.t

    def member_norm(self, scaled: torch.Tensor) -> torch.Tensor:
        """RMS over the state dim: one value per member (shape batch)."""
        n = scaled.shape[-1]
        return torch.linalg.vector_norm(scaled, dim=-1).mul_(1.0 / math.sqrt(n))

    def scaled_error(self, error: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor) -> torch.Tensor:
        rtol, atol = self.tolerances
        scale = torch.maximum(u0.abs(), u1.abs()).mul_(rtol).add_(atol)
        return error / scale

    def max_step_clamp(self, dt: float) -> float:
        opts = self.opts
        size = abs(dt)
        if opts.max_step is not None:
            size = min(size, opts.max_step)
        if opts.min_step is not None:
            size = max(size, opts.min_step)
        return math.copysign(size, self.direction)

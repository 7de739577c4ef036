"""Clocks: where each member is in time, how far its next step may go, and what to commit.

Three clocks share one interface, so the loop body in ``run.py`` is the same for
every stepping mode:

* ``SharedClock`` - adaptive, one step for the whole batch, time and step size kept
  in Python floats (one host transfer per step: the error norm and a finiteness probe);
* ``MemberClock`` - adaptive, each member with its own time and step as ``(*batch, 1)``
  tensors, finished members stepping with ``dt = 0``;
* ``FixedClock`` - a fixed grid, built lazily one block of steps at a time (memory
  stays flat however small ``dt`` is), no host transfer per step.

A clock steps towards its *target*: the next of ``tstops``, a terminal event's
landing time and ``t1``. A member whose state turns non-finite is frozen as UNSTABLE
and leaves the error norm, so the others continue exactly as they would have without
it: with a shared clock at once (the step is retried for the rest), with per-member
clocks after ``FREEZE_AFTER`` smaller retries in a row (its own step goes back to
what it was). A step that fails for every member is retried smaller like any rejection.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..problems import ODEProblem
from ..retcode import ReturnCode
from ..solver import RHS, Solver, StepResult
from .controller import initial_step, rms_norm
from .options import LoopOptions
from .state import LoopState

__all__ = ["FixedClock", "MemberClock", "SharedClock", "make_clock", "tree_where"]

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
        rhs = self.rhs
        scale = torch.maximum(u0.abs(), u1.abs()).mul_(rhs.rtol).add_(rhs.atol)
        return error / scale

    def max_step_clamp(self, dt: float) -> float:
        opts = self.opts
        size = abs(dt)
        if opts.max_step is not None:
            size = min(size, opts.max_step)
        if opts.min_step is not None:
            size = max(size, opts.min_step)
        return math.copysign(size, self.direction)


class SharedClock(_Clock):
    """Adaptive steps shared by the batch; t and dt in Python floats.

    The error norm is the largest per-member RMS norm over the running members, so
    every member meets the tolerance (an RMS over the whole batch would let one
    member's error drown among quiet ones) and a frozen member leaves it without
    changing the others' step sequence.
    """

    def start(self, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor, solver_state: Any) -> LoopState:
        st = self.new_state(u0, solver_state, 0.0, self.t0, 1.0)
        st.nonfinite_streak = 0
        self.fail_at_start(st, f0)
        st.dt = self.first_step(st, t0, u0, f0)
        return st

    def first_step(self, st: LoopState, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor) -> float:
        opts, span = self.opts, abs(self.t1 - self.t0)
        if opts.dt is not None:
            return self.max_step_clamp(self.direction * min(opts.dt, span))
        if not bool(st.running.any()):
            return self.direction * span
        running = st.running
        norm = self.batch_norm_fn(running if st.frozen_any else None)
        safe_u0 = torch.where(running[..., None], u0, 0) if st.frozen_any else u0
        safe_f0 = torch.where(running[..., None], f0, 0) if st.frozen_any else f0
        h = initial_step(self.rhs, t0, safe_u0, safe_f0, self.k - 1, self.rhs.rtol, self.rhs.atol, norm,
                         self.direction, span)
        value = float(h)
        if not math.isfinite(value) or value == 0.0:
            value = self.direction * 1e-6 * max(span, 1e-300)
        return self.max_step_clamp(value)

    def batch_norm_fn(self, running: torch.Tensor | None) -> Any:
        """The loop's norm of a scaled error over the batch (the user's ``norm`` when given)."""
        user = self.opts.norm
        if user is not None:
            if running is None:
                return user
            return lambda x: user(torch.where(running[..., None], x, 0))
        if not self.batch_shape:
            return lambda x: self.member_norm(x)
        if running is None:
            return lambda x: self.member_norm(x).amax()
        return lambda x: torch.where(running, self.member_norm(x), 0).amax()

    def running(self, st: LoopState) -> bool:
        return not self.finished

    def clamp(self, st: LoopState) -> tuple[float, bool, float]:
        target, self.at_stop = self.target(st.t)
        end = self.beside(target, -1.0) if self.at_stop else target
        remaining = (end - st.t) * self.direction
        last = abs(st.dt) >= remaining * (1 - 4 * self.eps)
        return (remaining * self.direction if last else st.dt), last, target

    def measure_tensors(self, res: StepResult, st: LoopState) -> torch.Tensor:
        """The tensor work of ``measure``: the step's error norm and a finiteness probe of the new
        state, stacked so that one host transfer brings both back (a compiled step ends here)."""
        running = st.running if st.frozen_any else None
        scaled, err, probe = self.error_and_probe(res, st.u, running)
        self.last_scaled = scaled
        return torch.stack((err, probe))

    def error_and_probe(self, res: StepResult, u: torch.Tensor, running: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scaled error, its norm over the (running) members and the sum of the new state (0-d, time dtype):
        the sum is finite exactly when every running member's new state is."""
        with torch.no_grad():
            u, u1 = u.detach(), res.u.detach()
            scaled = self.scaled_error(res.error.detach(), u, u1)
            err = self.batch_norm_fn(running)(scaled)
            probe_u = torch.where(running[..., None], u1, 0) if running is not None else u1
            probe = probe_u.sum()
            if self.complex:
                probe = probe.abs()
            return scaled, err.to(self.time_dtype).reshape(()), probe.to(self.time_dtype)

    def blockable(self, st: LoopState) -> bool:
        """Whether the next steps are plain ones that a compiled block may take (``block_step``): no
        member frozen, no tstop, event landing, per-step hook or event ahead, the target is t1."""
        opts = self.opts
        return (not st.frozen_any and self.landing is None and opts.tstops is None and opts.on_step is None
                and not opts.events and not self.finished)

    def block_step(self, solver: Solver, rhs: RHS, fractions: torch.Tensor, clock: tuple[torch.Tensor, ...],
                   u: torch.Tensor, state: Any, live: torch.Tensor) -> tuple[Any, ...]:
        """One plain step as tensor work, for a compiled block of steps (``compiled.py``).

        ``clock`` is (t, dt, err_prev, t1) as 0-d tensors and ``live`` whether this attempt
        happens at all (the block has not reached t1 or halted). It does what ``clamp``,
        ``measure``, ``accept``, ``commit`` and ``propose`` do for a step that is finite and does
        not collapse the step size; an attempt that is not plain *halts* the block before it
        takes effect, so that the loop repeats it through the ordinary path, which handles it.
        Returns the new clock, u, state, and (accepted, done, halted, counted) masks with the
        record of the attempt (t, h, u0, u1, dense; h = 0 where it was not accepted).
        """
        t, dt, err_prev, t1 = clock
        d, eps, opts = self.direction, self.eps, self.opts
        with torch.no_grad():
            remaining = (t1 - t) * d
            last = dt.abs() >= remaining * (1 - 4 * eps)
            step = torch.where(live, torch.where(last, remaining * d, dt), 0.0)
            times = torch.mul(fractions, step).add_(t).unbind(0)
        rhs.stage_times = times[1:] if len(times) > 1 else None
        res = solver.step(rhs, times[0], u, step, state)
        _, err, probe = self.error_and_probe(res, u, None)
        with torch.no_grad():
            finite = torch.isfinite(err) & torch.isfinite(probe)
            good = finite & (err <= 1.0)
            factor = opts.controller.factor(err, err_prev, good, self.k)
            new_dt = self.clamp_size(step * factor)
            halted = live & ~(good | (finite & ~self.collapsing(new_dt, step, t)))
            counted = live & ~halted
            accepted = counted & good
            done = accepted & last
            h = torch.where(accepted, step, 0.0)
            t_new = torch.where(accepted, torch.where(last, t1, t + step), t)
            err_prev = torch.where(accepted, err.clamp_min(1e-4), err_prev)
            dt = torch.where(counted, new_dt, dt)
        u_new = torch.where(accepted, res.u, u)
        state = tree_where(accepted, res.state, state)
        record = (t, h, u, u_new, res.dense)
        return (t_new, dt, err_prev, t1), u_new, state, (accepted, done, halted, counted), record

    def measure(self, res: StepResult, st: LoopState, measured: torch.Tensor | None = None
                ) -> tuple[float, torch.Tensor | None]:
        """The step's error norm as a float (inf when it is not finite) and, when some running
        member's new state is not finite, the mask of those members (else None)."""
        err_f, probe_f = (self.measure_tensors(res, st) if measured is None else measured).tolist()
        if math.isfinite(err_f) and math.isfinite(probe_f):
            return err_f, None
        with torch.no_grad():
            nonfinite = ~torch.isfinite(res.u.detach()).all(-1) & st.running
        return math.inf, (nonfinite if bool(nonfinite.any()) else None)

    def accept(self, err: float, st: LoopState) -> bool:
        return err <= 1.0

    def commit(self, st: LoopState, accepted: Any, res: StepResult, step: float, last: bool, target: float) -> None:
        """Move the running members to the end of an accepted step (frozen ones keep their state)."""
        if st.frozen_any:
            running = st.running
            st.u = torch.where(running[..., None], res.u, st.u)
            st.solver_state = tree_where(running, res.state, st.solver_state)
        else:
            st.u, st.solver_state = res.u, res.state
        self.restarted = last and self.at_stop
        st.t = (self.beside(target, 1.0) if self.restarted else target) if last else st.t + step
        st.accepted += 1
        if last and st.t == self.t1:
            self.stop_all(st, ReturnCode.SUCCESS)

    def propose(self, st: LoopState, step: float, err: float, accepted: bool, nonfinite: torch.Tensor | None) -> None:
        """The next step size (PI control), and the failures a rejection may reveal.

        A step that turns some (not all) members non-finite freezes them at once and is
        retried at the same size, so the others take exactly the steps they would take
        without them. When every running member is non-finite the step is rejected and
        shrunk like any other; after FREEZE_AFTER such attempts in a row (a Python int
        streak) or an underflowing step, they are UNSTABLE.
        """
        opts = self.opts
        factor = opts.controller.factor_scalar(err, st.err_prev, accepted, self.k)
        if accepted:
            st.err_prev = max(err, 1e-4)
        else:
            st.rejected += 1
        new_dt = self.max_step_clamp(step * factor)
        if accepted:
            self.accepted_dt = new_dt
        if nonfinite is not None and not bool((nonfinite == st.running).all()):
            # some members, not all: they alone are at fault; freeze them and retry the same step
            self.freeze(st, nonfinite, ReturnCode.UNSTABLE, st.t)
            st.dt = step
            return
        if nonfinite is None:
            st.nonfinite_streak = 0
        else:
            st.nonfinite_streak += 1
        underflow = abs(new_dt) <= 16 * self.eps * max(abs(st.t), 1.0)
        at_min = opts.min_step is not None and not accepted and abs(step) <= opts.min_step * (1 + 4 * self.eps)
        if nonfinite is not None and (underflow or at_min or st.nonfinite_streak >= FREEZE_AFTER):
            self.freeze(st, nonfinite, ReturnCode.UNSTABLE, st.t)
            st.nonfinite_streak = 0
        elif not accepted and (underflow or at_min):
            new_dt = self.too_small(st, new_dt)
        st.dt = new_dt

    def too_small(self, st: LoopState, new_dt: float) -> float:
        """The shared step collapsed: the members whose error rejects it are DT_TOO_SMALL.

        If others remain, they go on from the step size of the last accepted step; when
        every running member rejects, the whole batch stops.
        """
        if self.opts.norm is None and self.batch_shape:
            culprits = (self.member_norm(self.last_scaled) > 1) & st.running
            if bool(culprits.any()) and not bool((culprits == st.running).all()):
                self.freeze(st, culprits, ReturnCode.DT_TOO_SMALL, st.t)
                return getattr(self, "accepted_dt", new_dt)
        self.stop_all(st, ReturnCode.DT_TOO_SMALL)
        return new_dt

    def stop_times(self, st: LoopState) -> torch.Tensor:
        """Per member, the last time it reached: frozen members where they froze, the rest at t."""
        return torch.where(st.frozen_members, st.t_stop, st.t)


class FixedClock(SharedClock):
    """A fixed grid t0 + i*dt (restarting from each stop), built lazily; no host transfer per step.

    Stage times of regular grid steps are built one block of ``chunk_size`` steps at
    a time in one tensor op. Non-finite members are found once per block (and at the
    end): they cannot be retried with a smaller step, so they are marked UNSTABLE
    (FAILURE where an implicit solver flagged the step) and the others go on.
    """

    adaptive = False

    def start(self, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor, solver_state: Any) -> LoopState:
        dt = self.opts.dt
        st = self.new_state(u0, solver_state, self.direction * dt, self.t0, 1.0)
        self.fail_at_start(st, f0)
        self.grid_base, self.grid_index = self.t0, 0
        self.block: list[tuple[torch.Tensor, Any]] = []
        self.block_start = -1
        self.flagged: torch.Tensor | None = None  # members an implicit solver could not step (inf error)
        return st

    def clamp(self, st: LoopState) -> tuple[float, bool, float]:
        target, self.at_stop = self.target(st.t)
        end = self.beside(target, -1.0) if self.at_stop else target
        h = abs(st.dt)
        remaining = (end - st.t) * self.direction
        last = remaining <= h + 1e-9 * max(h, abs(target - self.grid_base))
        return (remaining * self.direction if last else st.dt), last, target

    def stage_clock(self, t: float, step: float) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        if step != self.direction * abs(self.opts.dt):
            return super().stage_clock(t, step)
        i = self.grid_index
        chunk = self.opts.chunk_size
        if not (self.block_start <= i < self.block_start + len(self.block)) or self.block_base != self.grid_base:
            self.block = self._block(i, chunk)
            self.block_start, self.block_base = i, self.grid_base
        return self.block[i - self.block_start]

    def _block(self, start: int, count: int) -> list[tuple[torch.Tensor, Any]]:
        fractions = (0.0, *self.solver.stage_fractions)
        h, base = self.direction * abs(self.opts.dt), self.grid_base
        table = torch.tensor([[base + i * h + c * h for c in fractions] for i in range(start, start + count)],
                             dtype=self.time_dtype, device=self.device)
        flat, m = table.reshape(-1).unbind(0), len(fractions)
        return [(flat[j * m], flat[j * m + 1:(j + 1) * m] if m > 1 else None) for j in range(count)]

    def measure_tensors(self, res: StepResult, st: LoopState) -> None:
        return None

    def blockable(self, st: LoopState) -> bool:
        return False  # the grid decides the steps: there is no controller to fuse

    def measure(self, res: StepResult, st: LoopState, measured: None = None) -> tuple[float, torch.Tensor | None]:
        if res.error is not None:  # implicit solvers flag steps they could not compute with inf
            bad = ~torch.isfinite(res.error.detach()).all(-1)
            self.flagged = bad if self.flagged is None else self.flagged | bad
        return 0.0, None

    def accept(self, err: float, st: LoopState) -> bool:
        return True

    def commit(self, st: LoopState, accepted: Any, res: StepResult, step: float, last: bool, target: float) -> None:
        st.u, st.solver_state = res.u, res.state
        self.restarted = last and self.at_stop
        if last:
            st.t = self.beside(target, 1.0) if self.restarted else target
            self.grid_base, self.grid_index = st.t, 0
        else:
            self.grid_index += 1
            st.t = self.grid_base + self.grid_index * st.dt
        st.accepted += 1
        if st.accepted % self.opts.chunk_size == 0 or (last and st.t == self.t1):
            self.check_members(st)
        if last and st.t == self.t1:
            self.stop_all(st, ReturnCode.SUCCESS)

    def check_members(self, st: LoopState) -> None:
        """Mark members that went non-finite (or that the solver flagged) since the last check."""
        with torch.no_grad():
            bad = ~torch.isfinite(st.u.detach()).all(-1)
            if self.flagged is not None:
                self.freeze(st, self.flagged, ReturnCode.FAILURE, st.t)
            self.freeze(st, bad, ReturnCode.UNSTABLE, st.t)

    def propose(self, st: LoopState, step: float, err: float, accepted: bool, nonfinite: torch.Tensor | None) -> None:
        """The grid decides the steps: nothing to control."""


class MemberClock(_Clock):
    """Adaptive steps per member: t, dt, err_prev are ``(*batch, 1)`` tensors.

    The one host transfer of a pass is ``running``: the count of running members, together with
    the numbers that riders (``ride``) need from the device, in one ``tolist``.
    """

    per_member = True
    #: running members at the last ``running`` call (the compactor reads it instead of syncing again)
    running_count = 0
    #: what shares the pass's host transfer (``ride``)
    riders: tuple[Any, ...] = ()

    def ride(self, rider: Any) -> None:
        """Let ``rider`` (``pending() -> 0-d int tensor | None``, ``settle(value: int)``) share the pass's sync."""
        self.riders = self.riders + (rider,)

    def clock(self, value: float) -> torch.Tensor:
        return torch.full(self.batch_shape + (1,), value, dtype=self.time_dtype, device=self.device)

    def initial_time(self) -> torch.Tensor:
        return self.clock(self.t0)

    def start(self, t0: torch.Tensor, u0: torch.Tensor, f0: torch.Tensor, solver_state: Any) -> LoopState:
        st = self.new_state(u0, solver_state, None, t0, self.clock(1.0))
        self.fail_at_start(st, f0)
        opts, span = self.opts, abs(self.t1 - self.t0)
        if opts.dt is not None:
            dt = self.clock(self.direction * min(opts.dt, span))
        else:
            safe_f0 = torch.where(torch.isfinite(f0), f0, 0)
            dt = initial_step(self.rhs, t0, u0, safe_f0, self.k - 1, self.rhs.rtol, self.rhs.atol, self.rhs.norm,
                              self.direction, span).expand(self.batch_shape + (1,)).clone()
        st.dt = self.clamp_size(dt)
        st.dt_before_streak = st.dt.clone()
        st.accepted = torch.zeros(self.batch_shape, dtype=torch.int64, device=self.device)
        st.rejected = torch.zeros_like(st.accepted)
        self.stops_t = torch.tensor(self.stops, dtype=self.time_dtype, device=self.device)
        self.elapsed_stops = (self.stops_t - self.t0) * self.direction
        return st

    def running(self, st: LoopState) -> bool:
        riders = [r for r in self.riders if r.pending() is not None]
        count = st.running.sum()
        if riders:
            count, *values = torch.stack([count] + [r.pending().to(count.dtype) for r in riders]).tolist()
            for rider, value in zip(riders, values):
                rider.settle(value)
        self.running_count = int(count)
        return self.running_count > 0

    def batch_norm_fn(self, running: torch.Tensor | None) -> Any:
        """Per-member clocks need no mask: each member's norm is its own (shape ``(*batch, 1)``)."""
        md = len(self.batch_shape)
        return self.opts.norm or (lambda x: rms_norm(x, md))

    def member_target(self, t: torch.Tensor) -> torch.Tensor:
        if len(self.stops) == 1:
            target = self.clock(self.t1)
        else:
            elapsed = (t - self.t0) * self.direction
            idx = torch.searchsorted(self.elapsed_stops, elapsed.reshape(-1).contiguous(), side="right")
            target = self.stops_t[idx.clamp_max(len(self.stops) - 1)].reshape(t.shape)
        is_stop = target != self.t1
        if self.landing is not None:
            closer = (self.landing - target) * self.direction < 0
            target = torch.where(closer, self.landing, target)
            is_stop = is_stop & ~closer
        return target, is_stop

    def beside_tensor(self, t: torch.Tensor, side: float) -> torch.Tensor:
        return torch.nextafter(t, torch.full_like(t, side * self.direction * math.inf))

    def reported_time(self, st: LoopState, last: Any, target: Any) -> Any:
        return st.t

    def plain(self) -> bool:
        """No tstop and no terminal landing ahead: every member's target is t1 and none stops short of it."""
        return len(self.stops) == 1 and self.landing is None

    def clamp(self, st: LoopState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            if self.plain():
                target, self.at_stop = self.clock(self.t1), False
                end = target
            else:
                target, self.at_stop = self.member_target(st.t)
                end = torch.where(self.at_stop, self.beside_tensor(target, -1.0), target)
            span = end - st.t
            last = st.dt.abs() >= self.signed(span) * (1 - 4 * self.eps)
            self.stepping = st.running[..., None]  # status does not change before commit: accept reuses it
            step = torch.where(self.stepping, torch.where(last, span, st.dt), 0.0)
        return step, last, target

    def stage_clock(self, t: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, None]:
        return t, None

    def measure_tensors(self, res: StepResult, st: LoopState) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            u, u1 = st.u.detach(), res.u.detach()
            scaled = self.scaled_error(res.error.detach(), u, u1)
            err = self.rhs.norm(scaled)
            finite = torch.isfinite(u1).all(-1, keepdim=True)
            return torch.where(finite & torch.isfinite(err), err, math.inf), ~finite[..., 0] & st.running

    def measure(self, res: StepResult, st: LoopState, measured: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member: the error norm (inf where the new state is not finite) and the non-finite mask."""
        return self.measure_tensors(res, st) if measured is None else measured

    def accept(self, err: torch.Tensor, st: LoopState) -> torch.Tensor:
        return (err <= 1) & self.stepping

    def commit(self, st: LoopState, accepted: torch.Tensor, res: StepResult, step: torch.Tensor,
               last: torch.Tensor, target: torch.Tensor) -> None:
        st.u = torch.where(accepted, res.u, st.u)
        st.solver_state = tree_where(accepted[..., 0], res.state, st.solver_state)
        with torch.no_grad():
            landing = accepted & last
            if self.plain():  # the target is t1 for all: nothing to restart, and landing there is success
                st.t = torch.where(accepted, torch.where(last, target, st.t + step), st.t)
                done = landing[..., 0]
            else:
                crossed = landing & self.at_stop
                landed = torch.where(crossed, self.beside_tensor(target, 1.0), target)
                st.t = torch.where(accepted, torch.where(last, landed, st.t + step), st.t)
                self.restarted = crossed[..., 0] if bool(crossed.any()) else False
                done = landing[..., 0] & (target[..., 0] == self.t1)
            moved = accepted[..., 0]
            st.t_stop = torch.where(moved, st.t[..., 0], st.t_stop)
            st.accepted += moved
            st.status = torch.where(done, ReturnCode.SUCCESS.value, st.status)

    def propose(self, st: LoopState, step: torch.Tensor, err: torch.Tensor, accepted: torch.Tensor,
                nonfinite: torch.Tensor) -> None:
        with torch.no_grad():
            running = st.running[..., None]
            factor = self.opts.controller.factor(err, st.err_prev, accepted, self.k)
            st.err_prev = torch.where(accepted, err.clamp_min(1e-4), st.err_prev)
            rejected = running & ~accepted
            st.rejected += rejected[..., 0]
            new_dt = self.clamp_size(torch.where(running, step * factor, st.dt))
            starting = nonfinite & (st.nonfinite_streak == 0)
            st.dt_before_streak = torch.where(starting[..., None], st.dt, st.dt_before_streak)
            st.nonfinite_streak = torch.where(nonfinite, st.nonfinite_streak + 1, 0)
            underflow = (rejected & self.collapsing(new_dt, step, st.t))[..., 0]
            unstable = nonfinite & (underflow | (st.nonfinite_streak >= FREEZE_AFTER))
            too_small = underflow & ~nonfinite
            st.status = torch.where(unstable, ReturnCode.UNSTABLE.value,
                                    torch.where(too_small, ReturnCode.DT_TOO_SMALL.value, st.status))
            st.dt = torch.where(unstable[..., None], st.dt_before_streak, new_dt)

    def stop_times(self, st: LoopState) -> torch.Tensor:
        return st.t_stop


def make_clock(problem: ODEProblem, solver: Solver, opts: LoopOptions, rhs: RHS) -> _Clock:
    """The clock for this solve's stepping mode."""
    adaptive = opts.adaptive and solver.adaptive
    if not adaptive:
        return FixedClock(problem, solver, opts, rhs)
    if opts.per_member and len(problem.batch_shape) > 0:
        return MemberClock(problem, solver, opts, rhs)
    return SharedClock(problem, solver, opts, rhs)
